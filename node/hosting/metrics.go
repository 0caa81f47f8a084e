package hosting

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hearthcdn/hearth/node/gateway"
)

// Metrics are a node's Prometheus metrics, in their own registry:
//
//	hearth_http_requests_total{kind,code}    responses served, by gateway.ServeKind and status
//	hearth_http_response_bytes_total{kind}   body bytes served, by kind
//	hearth_replicated_blocks_total           blocks downloaded and durably stored
//	hearth_replicated_bytes_total            bytes of those blocks
//	hearth_record_sequence                   sequence of the latest root record held
//	hearth_pinned_sequence                   sequence of the newest fully replicated root (seeders)
//	hearth_pinned_roots                      roots pinned (seeders)
//	hearth_records_refused_total{reason}     records refused: malformed, bad_signature, wrong_site, stale
//	hearth_roots_refused_total               roots refused: too large for --max-storage, or malformed
//	hearth_sources_dropped_total             sources dropped for sending wrong data
//	hearth_gc_deleted_blocks_total           blocks garbage-collected
//	hearth_published_roots_total             roots published (origin)
//	hearth_event_streams_open                record event streams open (visitors' pages and seeders)
//	hearth_event_stream_clients              distinct clients (IPv4 address, IPv6 /64) with a stream open
//
// plus the Go runtime and process collectors. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	respBytes     *prometheus.CounterVec
	ReplBlocks    prometheus.Counter
	ReplBytes     prometheus.Counter
	RecordSeq     prometheus.Gauge
	PinnedSeq     prometheus.Gauge
	PinnedRoots   prometheus.Gauge
	RecordsRefuse *prometheus.CounterVec
	RootsRefused  prometheus.Counter
	SourcesDrop   prometheus.Counter
	GCDeleted     prometheus.Counter
	Published     prometheus.Counter
	streamsOpen   prometheus.Gauge
	streamClients prometheus.Gauge
}

// NewMetrics returns metrics registered in a fresh registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hearth_http_requests_total", Help: "HTTP responses served, by kind and status code.",
		}, []string{"kind", "code"}),
		respBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hearth_http_response_bytes_total", Help: "HTTP response body bytes served, by kind.",
		}, []string{"kind"}),
		ReplBlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_replicated_blocks_total", Help: "Blocks downloaded, verified and durably stored.",
		}),
		ReplBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_replicated_bytes_total", Help: "Bytes of blocks downloaded, verified and durably stored.",
		}),
		RecordSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hearth_record_sequence", Help: "Sequence number of the latest root record held.",
		}),
		PinnedSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hearth_pinned_sequence", Help: "Sequence number of the newest fully replicated (pinned) root.",
		}),
		PinnedRoots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hearth_pinned_roots", Help: "Number of roots pinned.",
		}),
		RecordsRefuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hearth_records_refused_total", Help: "Root records refused, by reason.",
		}, []string{"reason"}),
		RootsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_roots_refused_total", Help: "Roots refused for exceeding the storage limit or for a malformed DAG.",
		}),
		SourcesDrop: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_sources_dropped_total", Help: "Sources dropped for sending wrong data.",
		}),
		GCDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_gc_deleted_blocks_total", Help: "Blocks deleted by garbage collection.",
		}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_published_roots_total", Help: "Roots published and signed by this origin.",
		}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hearth_event_streams_open", Help: "Record event streams open.",
		}),
		streamClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hearth_event_stream_clients", Help: "Distinct clients (IPv4 address, IPv6 /64) with a record event stream open.",
		}),
	}
	for _, c := range []prometheus.Collector{m.streamsOpen, m.streamClients, m.requests, m.respBytes, m.ReplBlocks, m.ReplBytes, m.RecordSeq,
		m.PinnedSeq, m.PinnedRoots, m.RecordsRefuse, m.RootsRefused, m.SourcesDrop, m.GCDeleted, m.Published,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for _, r := range []string{"malformed", "bad_signature", "wrong_site", "stale"} {
		m.RecordsRefuse.WithLabelValues(r)
	}
	return m
}

// Served implements gateway.Observer.
func (m *Metrics) Served(kind gateway.ServeKind, code int, bytes int64) {
	m.requests.WithLabelValues(string(kind), strconv.Itoa(code)).Inc()
	m.respBytes.WithLabelValues(string(kind)).Add(float64(bytes))
}

// Stored counts blocks replicated; it fits gateway.FetcherOptions.OnStored.
func (m *Metrics) Stored(blocks int, bytes int64) {
	m.ReplBlocks.Add(float64(blocks))
	m.ReplBytes.Add(float64(bytes))
}

// Streams implements gateway.StreamObserver.
func (m *Metrics) Streams(open, clients int) {
	m.streamsOpen.Set(float64(open))
	m.streamClients.Set(float64(clients))
}

// Gatherer returns the registry the metrics are in, for readers of the
// same values /metrics serves (the operator dashboard).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	_ gateway.Observer       = (*Metrics)(nil)
	_ gateway.StreamObserver = (*Metrics)(nil)
)
