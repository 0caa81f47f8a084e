// Package dashboard is the origin's live operator dashboard: one page,
// its script and style embedded, that draws what the node's Prometheus
// counters say — bytes served by kind, the share seeders took off the
// origin, the record event streams open and the latest root records —
// and keeps drawing as server-sent events bring new samples.
//
// Every figure is read from the same prometheus.Gatherer that serves
// /metrics (and, for seeders, from their /metrics), so the page and a
// scrape never disagree. Access is the operator's only: loopback clients
// by default, or whoever presents the token. Native only.
package dashboard
