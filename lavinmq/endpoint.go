package lavinmq

// Endpoint returns the host:port of the connection in service or, while there
// is none, of the client's first URL (the broker it dials first). It never
// holds credentials: it is what hook events and logs show (Conn.Endpoint), and
// what the tracing plugin gives as server.address and server.port. A URL
// written without a port gives its host alone.
func (c *Client) Endpoint() string {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil {
		return cur.endpoint
	}
	return endpoint(c.cfg.urls[0])
}
