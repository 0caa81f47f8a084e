package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hearthcdn/hearth/node"
)

// Sample is what the dashboard shows at one instant. Byte and request
// counts are totals since the node started, as /metrics has them; the page
// derives rates from consecutive samples.
type Sample struct {
	Time int64 `json:"t"` // Unix milliseconds
	// OriginBytes are hearth_http_response_bytes_total by kind, and
	// Requests hearth_http_requests_total summed over status codes.
	OriginBytes map[string]float64 `json:"originBytes"`
	Requests    map[string]float64 `json:"requests"`
	// PeerBytes are the static bytes (raw, car, file) the seeders of
	// Options.Peers served, from their /metrics; PeersUp how many of them
	// answered the latest scrape. Both 0 without peers.
	PeerBytes float64 `json:"peerBytes"`
	PeersUp   int     `json:"peersUp"`
	Peers     int     `json:"peers"`
	// Streams is hearth_event_streams_open, Clients
	// hearth_event_stream_clients.
	Streams float64 `json:"streams"`
	Clients float64 `json:"clients"`
	// Seq is hearth_record_sequence, Published
	// hearth_published_roots_total.
	Seq       float64 `json:"seq"`
	Published float64 `json:"published"`
}

// Record is a root record as the dashboard lists it.
type Record struct {
	Seq       uint64 `json:"seq"`
	Root      string `json:"root"`
	Published int64  `json:"published"` // Unix milliseconds
}

// staticKinds are the kinds of responses that carry a site's content: what
// a seeder or a visitor's tab can serve instead of the origin.
var staticKinds = []string{"file", "raw", "car"}

// read fills s from g.
func read(g prometheus.Gatherer, s *Sample) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	s.OriginBytes, s.Requests = map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "hearth_http_response_bytes_total":
			for _, m := range mf.GetMetric() {
				s.OriginBytes[label(m, "kind")] += m.GetCounter().GetValue()
			}
		case "hearth_http_requests_total":
			for _, m := range mf.GetMetric() {
				s.Requests[label(m, "kind")] += m.GetCounter().GetValue()
			}
		case "hearth_event_streams_open":
			s.Streams = gauge(mf)
		case "hearth_event_stream_clients":
			s.Clients = gauge(mf)
		case "hearth_record_sequence":
			s.Seq = gauge(mf)
		case "hearth_published_roots_total":
			if ms := mf.GetMetric(); len(ms) > 0 {
				s.Published = ms[0].GetCounter().GetValue()
			}
		}
	}
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func gauge(mf *dto.MetricFamily) float64 {
	if ms := mf.GetMetric(); len(ms) > 0 {
		return ms[0].GetGauge().GetValue()
	}
	return 0
}

// maxScrape bounds a peer's /metrics body.
const maxScrape = 4 << 20

// scrapePeer returns the static bytes the node at base (its HTTP base URL)
// reports having served.
func scrapePeer(ctx context.Context, c *http.Client, base string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scraping %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scraping %s: %s", base, resp.Status)
	}
	return staticBytes(io.LimitReader(resp.Body, maxScrape))
}

// staticBytes sums hearth_http_response_bytes_total over staticKinds in a
// Prometheus text exposition.
func staticBytes(r io.Reader) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "hearth_http_response_bytes_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		for _, k := range staticKinds {
			if strings.Contains(labels, `kind="`+k+`"`) {
				v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
				if err != nil {
					return 0, fmt.Errorf("reading %q: %w", line, err)
				}
				sum += v
			}
		}
	}
	return sum, sc.Err()
}

// records lists the newest n records of h, newest first.
func records(h []*node.RootRecord, n int) []Record {
	out := make([]Record, 0, n)
	for i := len(h) - 1; i >= 0 && len(out) < n; i-- {
		r := h[i]
		out = append(out, Record{Seq: r.Seq, Root: r.Root.String(), Published: r.Published.UnixMilli()})
	}
	return out
}
