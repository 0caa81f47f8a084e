package gateway

import (
	"net/url"
	"strings"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// WellKnownPrefix is the path under which a node serves root records; see
// the package documentation for the endpoints below it.
const WellKnownPrefix = "/.well-known/hearth/"

// Media types of the record endpoints and of the Trustless Gateway.
const (
	MediaRecord  = "application/vnd.hearth.root-record"
	MediaRecords = "application/vnd.hearth.root-records"
	MediaRaw     = "application/vnd.ipld.raw"
	MediaCAR     = "application/vnd.ipld.car"
	// CARContentType is the Content-Type of every CAR this package serves
	// (Trustless Gateway spec, "CAR format signaling in Response").
	CARContentType = "application/vnd.ipld.car; version=1; order=dfs; dups=n"
)

// RecordPath returns the path of site's latest record.
func RecordPath(site node.SiteID) string { return WellKnownPrefix + site.String() + "/record" }

// RecordsPath returns the path of site's record history.
func RecordsPath(site node.SiteID) string { return WellKnownPrefix + site.String() + "/records" }

// EventsPath returns the path of site's record event stream.
func EventsPath(site node.SiteID) string { return WellKnownPrefix + site.String() + "/events" }

// ipfsPath returns "/ipfs/{cid}/{escaped segs...}".
func ipfsPath(c cid.Cid, segs []string) string {
	var b strings.Builder
	b.WriteString("/ipfs/")
	b.WriteString(c.String())
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// splitEscapedPath is node.SplitEscapedPath with its errors as bad
// requests.
func splitEscapedPath(p string) ([]string, error) {
	segs, err := node.SplitEscapedPath(p)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return segs, nil
}
