package testbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// Proxy is an in-process toxiproxy between a client and the broker.
type Proxy struct {
	t     testing.TB
	proxy *toxiproxy.Proxy
	// URL is the broker URL that goes through the proxy.
	URL string
}

// NewProxy starts a proxy on a free loopback port in front of the broker. It
// is stopped when the test ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, Name(t, "proxy"), "127.0.0.1:0", HostPort(t))
	if err := p.Start(); err != nil {
		t.Fatalf("start toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{t: t, proxy: p, URL: WithHost(t, p.Listen)}
}

// AddToxic adds a toxic (see toxiproxy's README for types and attributes).
func (p *Proxy) AddToxic(name, typ, stream string, attrs map[string]any) {
	p.t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		p.t.Fatalf("add toxic %s: %v", name, err)
	}
}

// RemoveToxic removes a toxic added with AddToxic.
func (p *Proxy) RemoveToxic(name string) {
	p.t.Helper()
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		p.t.Fatalf("remove toxic %s: %v", name, err)
	}
}

// Blackhole makes the proxy swallow everything in both directions without
// closing the connections (a half-open TCP peer). Undo with Restore.
func (p *Proxy) Blackhole() {
	p.AddToxic("blackhole-up", "timeout", "upstream", map[string]any{"timeout": 0})
	p.AddToxic("blackhole-down", "timeout", "downstream", map[string]any{"timeout": 0})
}

// Restore removes the toxics that Blackhole added.
func (p *Proxy) Restore() {
	p.RemoveToxic("blackhole-up")
	p.RemoveToxic("blackhole-down")
}

// ResetPeer makes the proxy reset (TCP RST) every connection at the next byte
// the client sends, new connections included, until RemoveToxic("reset").
// An idle connection is reset at its next heartbeat.
func (p *Proxy) ResetPeer() {
	p.AddToxic("reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
}

// Disable stops the proxy listening and closes every connection through it (broker unreachable).
func (p *Proxy) Disable() { p.proxy.Stop() }

// Enable starts the proxy again on the same address.
func (p *Proxy) Enable() {
	p.t.Helper()
	if err := p.proxy.Start(); err != nil {
		p.t.Fatalf("restart toxiproxy: %v", err)
	}
}

// LeakOptions are the goleak options for packages whose tests use a Proxy:
// toxiproxy ends its link and toxic goroutines asynchronously after Stop (and
// leaves stubs of removed toxics blocked until their link closes). Only
// toxiproxy's own functions are ignored.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	}
}
