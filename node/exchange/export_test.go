package exchange

import "github.com/hearthcdn/hearth/node"

// setSendHook makes s rewrite each block before sending it (a corrupt or
// lying seeder).
func (s *Server) setSendHook(h func(peer string, b node.Block) node.Block) { s.sendHook = h }
