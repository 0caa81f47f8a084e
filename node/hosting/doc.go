// Package hosting holds what the origin and the seeders share beyond the
// gateway handlers: the route table of a node's HTTP server, its
// Prometheus metrics, and an http.Server with timeouts and graceful
// shutdown. Native only.
package hosting
