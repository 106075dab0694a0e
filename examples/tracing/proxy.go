package main

import (
	"net"
	"sync"
	"sync/atomic"
)

// cutProxy forwards TCP connections to the broker and can play a network
// fault: swallow what the client sends (so a published message never reaches
// the broker), then cut every connection. It stands in for a flaky network,
// so that the example needs nothing but a broker.
type cutProxy struct {
	ln      net.Listener
	target  string
	swallow atomic.Bool // drop client-to-broker bytes

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup // the accept loop and the pipes
}

func newCutProxy(target string) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the host:port to dial instead of the broker's.
func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c, true)
		go p.pipe(c, u, false)
	}
}

// pipe copies src to dst until either ends; upstream bytes are dropped
// while swallow is set.
func (p *cutProxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !(upstream && p.swallow.Load()) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a closed connection
			return
		}
	}
}

// Swallow starts dropping what clients send.
func (p *cutProxy) Swallow() { p.swallow.Store(true) }

// Cut closes every connection (what was swallowed is lost) and forwards
// normally again.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.swallow.Store(false)
}

// Close stops the proxy and waits for its goroutines.
func (p *cutProxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
