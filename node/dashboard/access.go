package dashboard

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"
)

// cookieName carries the token after a page was opened with ?token=, so
// that its script, style and event stream need no token in their URLs.
const cookieName = "hearth_dashboard"

// proxyHeaders mark a request forwarded by a reverse proxy: its peer
// address is the proxy's, not the client's, so loopback says nothing.
var proxyHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"}

// authorized reports whether r is the operator's. With a token, a request
// presenting it in ?token= also gets the cookie.
func (d *Dashboard) authorized(w http.ResponseWriter, r *http.Request) bool {
	if d.opts.Token == "" {
		for _, h := range proxyHeaders {
			if r.Header.Get(h) != "" {
				return false
			}
		}
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		return err == nil && ap.Addr().Unmap().IsLoopback()
	}
	if t := r.URL.Query().Get("token"); t != "" {
		if !d.tokenMatches(t) {
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: d.opts.Prefix,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		return true
	}
	if c, err := r.Cookie(cookieName); err == nil && d.tokenMatches(c.Value) {
		return true
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && d.tokenMatches(t) {
		return true
	}
	return false
}

func (d *Dashboard) tokenMatches(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(d.opts.Token)) == 1
}

func (d *Dashboard) howToAccess() string {
	if d.opts.Token == "" {
		return "open it from the origin's own host (loopback), not through a proxy"
	}
	return "open the URL with the token that `hearth origin` logged"
}
