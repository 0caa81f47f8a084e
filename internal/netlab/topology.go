package netlab

import (
	"fmt"
	"time"
)

// The CDN topology's links (one-way delays; RTT between two boxes is twice
// the sum of their delays).
const (
	// OriginDelay puts the origin 80 ms (RTT) from the visitor and the
	// full-cone home: 2×(35+5) ms.
	OriginDelay = 35 * time.Millisecond
	// OriginRate is the origin's link rate, each way: 20 Mbit/s.
	OriginRate = 20_000_000
	// RelayDelay puts the relay 20 ms from the visitor.
	RelayDelay = 5 * time.Millisecond
	// ConeDelay puts the full-cone home 20 ms from the visitor.
	ConeDelay = 5 * time.Millisecond
	// SymDelay puts the symmetric-NAT home 40 ms from the visitor.
	SymDelay = 15 * time.Millisecond
	// VisitorDelay is the visitor's own access link.
	VisitorDelay = 5 * time.Millisecond
)

// CDN is Hearth's reference topology: an origin far away on a thin link, a
// relay (signalling, STUN, TURN) on a public address, two members' homes
// (a seeder behind a full-cone NAT, one behind a symmetric NAT) and a
// visitor behind a port-restricted home NAT, 20–40 ms from the seeders.
//
//	origin   198.18.1.2   35 ms, 20 Mbit/s
//	relay    198.18.2.2    5 ms
//	cone     198.18.3.2    5 ms, full cone   → seeder-cone 192.168.3.2
//	sym      198.18.4.2   15 ms, symmetric   → seeder-sym  192.168.4.2
//	home     198.18.5.2    5 ms, port-restr. → visitor     192.168.5.2
type CDN struct {
	Lab *Lab

	Origin *Host
	Relay  *Host

	ConeNAT    *NAT
	ConeSeeder *Host
	SymNAT     *NAT
	SymSeeder  *Host
	VisitorNAT *NAT
	Visitor    *Host
}

// NewCDN builds the reference topology in a new lab. Close the lab (c.Lab)
// when done.
func NewCDN() (*CDN, error) {
	l, err := New()
	if err != nil {
		return nil, err
	}
	c := &CDN{Lab: l}
	if err := c.build(); err != nil {
		l.Close()
		return nil, fmt.Errorf("building the CDN topology: %w", err)
	}
	return c, nil
}

func (c *CDN) build() error {
	var err error
	l := c.Lab
	if c.Origin, err = l.AddHost("origin", Link{Delay: OriginDelay, Rate: OriginRate}); err != nil {
		return err
	}
	if c.Relay, err = l.AddHost("relay", Link{Delay: RelayDelay}); err != nil {
		return err
	}
	if c.ConeNAT, err = l.AddNAT("cone", FullCone, Link{Delay: ConeDelay}); err != nil {
		return err
	}
	if c.ConeSeeder, err = c.ConeNAT.AddHost("seeder-cone"); err != nil {
		return err
	}
	if c.SymNAT, err = l.AddNAT("sym", Symmetric, Link{Delay: SymDelay}); err != nil {
		return err
	}
	if c.SymSeeder, err = c.SymNAT.AddHost("seeder-sym"); err != nil {
		return err
	}
	if c.VisitorNAT, err = l.AddNAT("home", PortRestricted, Link{Delay: VisitorDelay}); err != nil {
		return err
	}
	if c.Visitor, err = c.VisitorNAT.AddHost("visitor"); err != nil {
		return err
	}
	return nil
}
