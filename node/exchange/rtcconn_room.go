package exchange

import "context"

// waitRoom waits until the data channel's send buffer is at most
// sendHighWater bytes (back-pressure; c.low is signalled when it drains
// below sendLowWater). It fails with ErrClosed once the connection ended,
// or with ctx's error. The caller holds c.wmu.
func (c *rtcConn) waitRoom(ctx context.Context) error {
	for c.dc.BufferedAmount() > sendHighWater {
		select {
		case <-c.low:
		case <-c.closed:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-c.closed:
		return ErrClosed
	default:
		return nil
	}
}
