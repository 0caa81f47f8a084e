package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node/dashboard"
	"github.com/hearthcdn/hearth/node/hosting"
)

// dashboardFlags configure the origin's operator dashboard
// (package dashboard, at hosting.DashboardPrefix).
type dashboardFlags struct {
	mode, token string
	peers       []string
}

func addDashboardFlags(cmd *cobra.Command) *dashboardFlags {
	f := &dashboardFlags{}
	fl := cmd.Flags()
	fl.StringVar(&f.mode, "dashboard", "loopback", "operator dashboard at "+hosting.DashboardPrefix+": loopback (only clients on this host, not through a proxy), token (anyone with the token logged at start), or off")
	fl.StringVar(&f.token, "dashboard-token", "", "the dashboard's token (implies --dashboard=token; default: a random one)")
	fl.StringSliceVar(&f.peers, "dashboard-peer", nil, "base URL of a seeder whose /metrics the dashboard reads for the bytes it served, repeatable")
	return f
}

// options returns the dashboard's options, nil when it is off.
func (f *dashboardFlags) options() (*dashboard.Options, error) {
	if f.token != "" && f.mode == "loopback" {
		f.mode = "token"
	}
	switch f.mode {
	case "off":
		return nil, nil
	case "loopback":
		return &dashboard.Options{Peers: f.peers}, nil
	case "token":
		if f.token == "" {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			f.token = base64.RawURLEncoding.EncodeToString(b)
		}
		return &dashboard.Options{Token: f.token, Peers: f.peers}, nil
	}
	return nil, errUsage(fmt.Sprintf("--dashboard %q: want loopback, token or off", f.mode))
}

// url returns the dashboard's URL on a server listening at addr, with the
// token when there is one; "" when the dashboard is off.
func (f *dashboardFlags) url(addr net.Addr) string {
	if f.mode == "off" {
		return ""
	}
	host := addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	u := "http://" + host + hosting.DashboardPrefix
	if f.token != "" {
		u += "?token=" + url.QueryEscape(f.token)
	}
	return u
}
