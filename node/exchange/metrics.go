//go:build !js

package exchange

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of a Server, per peer and in total. The per-peer series cover
// the peers the server tracks (connected ones and up to a few thousand
// recent ones), so their number stays bounded.
var (
	descPeerBytes = prometheus.NewDesc("hearth_exchange_peer_served_bytes_total",
		"Block bytes sent to a peer over the exchange.", []string{"peer"}, nil)
	descPeerBlocks = prometheus.NewDesc("hearth_exchange_peer_served_blocks_total",
		"Blocks sent to a peer over the exchange.", []string{"peer"}, nil)
	descPeerRequests = prometheus.NewDesc("hearth_exchange_peer_requests_total",
		"Requests from a peer that were served (any outcome but busy).", []string{"peer"}, nil)
	descPeerBusy = prometheus.NewDesc("hearth_exchange_peer_busy_total",
		"Requests from a peer answered busy (over its concurrency or rate limit).", []string{"peer"}, nil)
	descPeers = prometheus.NewDesc("hearth_exchange_connected_peers",
		"Peers connected to the exchange server.", nil, nil)
	descEvicted = prometheus.NewDesc("hearth_exchange_idle_evicted_total",
		"Idle connections closed to make room for a new peer (MaxPeers).", nil, nil)
)

var _ prometheus.Collector = (*Server)(nil)

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPeerBytes
	ch <- descPeerBlocks
	ch <- descPeerRequests
	ch <- descPeerBusy
	ch <- descPeers
	ch <- descEvicted
}

// Collect implements prometheus.Collector: register the Server with a
// registry to expose its per-peer accounting on /metrics.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	connected := 0
	for _, p := range s.Stats() {
		if p.Connected {
			connected++
		}
		counter(ch, descPeerBytes, p.BytesServed, p.Peer)
		counter(ch, descPeerBlocks, p.Blocks, p.Peer)
		counter(ch, descPeerRequests, p.Requests, p.Peer)
		counter(ch, descPeerBusy, p.Busy, p.Peer)
	}
	if m, err := prometheus.NewConstMetric(descPeers, prometheus.GaugeValue, float64(connected)); err == nil {
		ch <- m
	}
	if m, err := prometheus.NewConstMetric(descEvicted, prometheus.CounterValue, float64(s.Evicted())); err == nil {
		ch <- m
	}
}

// counter sends one per-peer counter. Label values must be UTF-8; peer IDs
// come from the network, so invalid bytes are replaced.
func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, peer string) {
	m, err := prometheus.NewConstMetric(d, prometheus.CounterValue, float64(v), strings.ToValidUTF8(peer, "\uFFFD"))
	if err == nil {
		ch <- m
	}
}
