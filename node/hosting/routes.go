package hosting

import (
	"encoding/json"
	"net/http"
	"time"
)

// Routes are the handlers of a node's HTTP server. Nil handlers are left out.
type Routes struct {
	Trustless http.Handler // /ipfs/
	Records   http.Handler // /.well-known/hearth/
	Publish   http.Handler // POST /.well-known/hearth/{site}/publish
	Members   http.Handler // /.well-known/hearth/{site}/members
	Site      http.Handler // every other path
	Metrics   http.Handler // /metrics
	Dashboard http.Handler // /.well-known/hearth-dashboard/ (origin only)
	// Health answers /healthz: ready reports whether the node can serve
	// its site; detail is encoded as JSON in the body.
	Health func() (ready bool, detail any)
}

// DashboardPrefix is where an origin serves its operator dashboard: under
// the well-known prefix, where a site's own files never are.
const DashboardPrefix = "/.well-known/hearth-dashboard/"

// Handler returns the node's route table:
//
//	/ipfs/                  the Trustless Gateway
//	/.well-known/hearth/    root records
//	POST …/{site}/publish   a new signed root with its blocks (origin only)
//	…/{site}/members        the site's signed member list (POST: origin only)
//	/metrics                Prometheus metrics
//	/.well-known/hearth-dashboard/  the operator dashboard (origin only)
//	/healthz                readiness: 200 when ready, else 503; JSON detail
//	/                       the site's files
//
// A site's own files at these paths are shadowed.
func (r Routes) Handler() http.Handler {
	mux := http.NewServeMux()
	if r.Trustless != nil {
		mux.Handle("/ipfs/", r.Trustless)
	}
	if r.Records != nil {
		mux.Handle("/.well-known/hearth/", r.Records)
	}
	if r.Publish != nil {
		mux.Handle("POST /.well-known/hearth/{site}/publish", r.Publish)
	}
	if r.Dashboard != nil {
		// Beside /.well-known/hearth/, not under it, so that it never
		// overlaps the record and member routes ({site} is a wildcard).
		mux.Handle("GET "+DashboardPrefix, r.Dashboard)
	}
	if r.Members != nil {
		mux.Handle("/.well-known/hearth/{site}/members", r.Members)
	}
	if r.Metrics != nil {
		mux.Handle("GET /metrics", r.Metrics)
	}
	if r.Health != nil {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			ready, detail := r.Health()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if !ready {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(detail)
		})
	}
	if r.Site != nil {
		mux.Handle("/", r.Site)
	} else {
		mux.Handle("/", http.NotFoundHandler())
	}
	return writeDeadline(mux)
}

// requestWriteDeadline is how long any response may take to write unless
// its handler extends it (the gateway handlers do, as their bodies move).
var requestWriteDeadline = 30 * time.Second

// writeDeadline gives every response a fresh write deadline. Serve sets no
// WriteTimeout (long streams must live), so without this a keep-alive
// connection would keep whatever deadline its previous response left.
func writeDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(requestWriteDeadline))
		h.ServeHTTP(w, r)
	})
}
