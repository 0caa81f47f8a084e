package relayserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hearthcdn/hearth/relay"
)

// Reasons a connection ends or is refused, the "reason" label of
// hearth_relay_disconnects_total and hearth_relay_refused_total.
const (
	reasonClosed   = "closed"    // the peer went away or the socket failed
	reasonSlow     = "slow"      // send queue full or write timed out
	reasonStrikes  = "strikes"   // too many refused messages in a row
	reasonTooBig   = "too_big"   // message over MaxMessageSize
	reasonBadHello = "bad_hello" // hello missing or invalid
	reasonIdle     = "idle"      // nothing received for IdleTimeout
	reasonHello    = "hello_timeout"
	reasonReplaced = "replaced"
	reasonShutdown = "shutdown"
	reasonPerIP    = "per_ip"
	reasonProtocol = "protocol" // a broken WebSocket frame
)

var messageTypes = []relay.Type{
	relay.TypeHello, relay.TypeAnnounce, relay.TypeFind, relay.TypeSignal, relay.TypePublish,
	relay.TypeSubscribe, relay.TypeUnsubscribe, relay.TypeICE, relay.TypePing,
}

type metrics struct {
	connections prometheus.Gauge
	received    map[relay.Type]prometheus.Counter
	recvOther   prometheus.Counter
	relayed     prometheus.Counter
	errors      *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	refused     *prometheus.CounterVec
	published   prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, s *Server) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hearth_relay_connections", Help: "Open WebSocket connections.",
		}),
		received: make(map[relay.Type]prometheus.Counter),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_relay_signals_relayed_total", Help: "Signals forwarded from one peer to another.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hearth_relay_errors_sent_total", Help: "Error messages sent to peers, by code.",
		}, []string{"code"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hearth_relay_disconnects_total", Help: "Closed WebSocket connections, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hearth_relay_refused_total", Help: "WebSocket upgrades refused, by reason.",
		}, []string{"reason"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hearth_relay_records_published_total", Help: "Root records accepted and forwarded.",
		}),
	}
	recv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hearth_relay_messages_received_total", Help: "Messages received from peers, by type.",
	}, []string{"type"})
	for _, t := range messageTypes {
		m.received[t] = recv.WithLabelValues(string(t))
	}
	m.recvOther = recv.WithLabelValues("other")
	peers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hearth_relay_peers", Help: "Peers that completed hello.",
	}, func() float64 { p, _ := s.reg.counts(); return float64(p) })
	anns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hearth_relay_announcements", Help: "Announced (peer, site) pairs.",
	}, func() float64 { _, a := s.reg.counts(); return float64(a) })
	records := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hearth_relay_records", Help: "Sites whose latest root record the relay holds.",
	}, func() float64 { return float64(s.records.count()) })
	for _, c := range []prometheus.Collector{m.connections, recv, m.relayed, m.errors, m.disconnects,
		m.refused, m.published, peers, anns, records} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering relay metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) receivedType(t relay.Type) {
	if c, ok := m.received[t]; ok {
		c.Inc()
		return
	}
	m.recvOther.Inc()
}

// newPromRegistry returns a registry with the Go runtime and process
// collectors.
func newPromRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering runtime metrics: %w", err)
		}
	}
	return reg, nil
}
