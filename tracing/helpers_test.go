package tracing_test

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/tracing"
)

// recorded is a tracer provider whose ended spans are kept in memory.
type recorded struct {
	sr *tracetest.SpanRecorder
	tp *sdktrace.TracerProvider
	tr *tracing.Tracer
}

func newRecorded(t testing.TB, opts ...tracing.Option) *recorded {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr, err := tracing.New(append([]tracing.Option{tracing.WithTracerProvider(tp), tracing.WithPropagator(propagation.TraceContext{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &recorded{sr: sr, tp: tp, tr: tr}
}

// spans returns the ended spans of kind k.
func (r *recorded) spans(k trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.sr.Ended() {
		if s.SpanKind() == k {
			out = append(out, s)
		}
	}
	return out
}

// waitSpans waits until n spans of kind k have ended.
func (r *recorded) waitSpans(t testing.TB, k trace.SpanKind, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	testbroker.Eventually(t, 30*time.Second, fmt.Sprintf("%d %s spans", n, k), func() bool { return len(r.spans(k)) >= n })
	return r.spans(k)
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func eventNames(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Name)
	}
	return out
}

// wantAttrs fails unless s has every attribute of want.
func wantAttrs(t testing.TB, s sdktrace.ReadOnlySpan, want map[attribute.Key]any) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		g, ok := got[k]
		if !ok || g.AsInterface() != v {
			t.Errorf("span %q: %s = %v (set %v), want %v", s.Name(), k, g.AsInterface(), ok, v)
		}
	}
}

// describe renders a span for the test log (and the report).
func describe(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q trace=%s span=%s parent=%s status=%s %q duration=%v\n", s.SpanKind(), s.Name(),
		s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.Status().Code, s.Status().Description,
		s.EndTime().Sub(s.StartTime()).Round(time.Millisecond))
	kvs := s.Attributes()
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	for _, kv := range kvs {
		fmt.Fprintf(&b, "    %s = %v\n", kv.Key, kv.Value.AsInterface())
	}
	for _, l := range s.Links() {
		fmt.Fprintf(&b, "    link -> trace=%s span=%s\n", l.SpanContext.TraceID(), l.SpanContext.SpanID())
	}
	for _, e := range s.Events() {
		fmt.Fprintf(&b, "    event +%v %q", e.Time.Sub(s.StartTime()).Round(time.Millisecond), e.Name)
		for _, kv := range e.Attributes {
			fmt.Fprintf(&b, " %s=%v", kv.Key, kv.Value.AsInterface())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// noSecret fails if the password of rawURL appears anywhere in the spans.
func noSecret(t testing.TB, rawURL string, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		t.Fatalf("the URL has no password: the check proves nothing")
	}
	for _, s := range spans {
		text := describe(s)
		for _, e := range s.Events() {
			for _, kv := range e.Attributes {
				text += kv.Value.Emit()
			}
		}
		if strings.Contains(text, pw) || strings.Contains(text, u.User.String()+"@") {
			t.Fatalf("span %q holds the URL's credentials:\n%s", s.Name(), text)
		}
	}
}

func newClient(t testing.TB, rawURL string, opts ...lavinmq.Option) *lavinmq.Client {
	t.Helper()
	c, err := lavinmq.New(rawURL, append([]lavinmq.Option{lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// declareQueue declares a durable queue on a raw channel; it is deleted at the end.
func declareQueue(t testing.TB) string {
	t.Helper()
	q := testbroker.Name(t, "trace")
	if _, err := testbroker.Raw(t).QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(testbroker.URL(t))
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	})
	return q
}

// runConsumer runs k with h until the test ends.
func runConsumer(t testing.TB, k *consumer.Consumer, h consumer.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = k.Run(ctx, h)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}
