package relayserver

// readBlocking is the reader goroutine of a blocking-mode connection (TLS,
// or a system without epoll): it holds a buffer while it waits, which loop
// mode does not.
func (c *conn) readBlocking(pending []byte) {
	defer c.cleanup() // ends with Server.forget, which releases the connection's WaitGroup count
	if !c.start(pending) {
		return
	}
	for !c.killed.Load() {
		buf := c.space(c.need())
		n, err := c.nc.Read(buf)
		if n > 0 && !c.received(n) {
			return
		}
		if err != nil {
			c.setReason(reasonClosed)
			return
		}
	}
}
