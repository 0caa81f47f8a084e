//go:build linux

package harness_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node/hosting"
)

// The dashboard in its default mode serves the origin's own host and
// refuses the same request when nginx (the README's server block, which
// sets X-Forwarded-For) forwards it; with --dashboard=token the origin
// logs a URL whose token opens it from anywhere; --dashboard=off serves
// no dashboard at all.
func TestDashboardAccess(t *testing.T) {
	harness.NeedNginx(t)
	src := t.TempDir()
	harness.WriteTree(t, src, map[string][]byte{"index.html": []byte("<!doctype html><p>hi</p>")})
	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, src)
	ca := harness.NewTestCA(t)
	proxy := harness.StartNginx(t, ca, origin.Addr)
	client := ca.Client(30 * time.Second)
	status := func(c *http.Client, u string) int {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := status(http.DefaultClient, origin.URL()+hosting.DashboardPrefix); c != 200 {
		t.Errorf("loopback: %d, want 200", c)
	}
	if c := status(client, proxy.URL()+hosting.DashboardPrefix); c != 403 {
		t.Errorf("through nginx: %d, want 403", c)
	}
	if c := status(client, proxy.URL()+"/"); c != 200 {
		t.Errorf("the site through nginx: %d", c)
	}

	origin.Stop()
	origin.Restart("--dashboard", "token")
	// The URL of this start: the log's last.
	all := regexp.MustCompile(`msg="operator dashboard" url="?([^"\s]+)`).FindAllStringSubmatch(origin.Log(), -1)
	var m []string
	if len(all) > 0 {
		m = all[len(all)-1]
	}
	if m == nil || !strings.Contains(m[1], hosting.DashboardPrefix+"?token=") {
		t.Fatalf("no dashboard URL with a token in the log:\n%s", origin.LogTail(20))
	}
	tokenURL := strings.Replace(m[1], "http://"+origin.Addr, proxy.URL(), 1)
	if c := status(client, tokenURL); c != 200 {
		t.Errorf("with the token through nginx: %d, want 200", c)
	}
	if c := status(http.DefaultClient, origin.URL()+hosting.DashboardPrefix); c != 403 {
		t.Errorf("loopback without the token: %d, want 403", c)
	}

	origin.Stop()
	origin.SetArgs(append(origin.Args(), "--dashboard", "off")...)
	origin.Restart()
	if c := status(http.DefaultClient, origin.URL()+hosting.DashboardPrefix); c == 200 {
		t.Errorf("--dashboard=off: %d", c)
	}
}
