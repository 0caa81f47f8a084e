package relaysig

import (
	"context"

	"github.com/pion/webrtc/v4"

	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// ICESource returns an exchange.TransportConfig.ICESource that takes STUN
// and TURN servers from the relay's ice answer (Client.CachedICEServers:
// kept while its credentials are fresh). Errors: those of
// Client.ICEServers.
func ICESource(c *relayclient.Client) func(context.Context) ([]webrtc.ICEServer, error) {
	return func(ctx context.Context) ([]webrtc.ICEServer, error) {
		a, err := c.CachedICEServers(ctx)
		if err != nil {
			return nil, err
		}
		servers := make([]webrtc.ICEServer, 0, len(a.Servers))
		for _, s := range a.Servers {
			servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
		return servers, nil
	}
}
