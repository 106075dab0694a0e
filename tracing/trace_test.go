package tracing_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
	"github.com/c3ecadf2/lavinmq-go/tracing"
)

// TestPublishAndConsumeAreOneTrace publishes under a parent span and consumes:
// the producer span is the parent's child, the consumer span the producer
// span's child (and linked to it), the handler's own span the consumer span's
// child, all in one trace, with the semconv attributes; the caller's headers
// are kept and never written; no span holds the URL's password.
func TestPublishAndConsumeAreOneTrace(t *testing.T) {
	r := newRecorded(t)
	q := declareQueue(t)
	c := newClient(t, testbroker.URL(t))
	p, err := producer.New(c, q, producer.WithHooks(r.tr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := r.tp.Tracer("test").Start(context.Background(), "place order")
	user := amqp.Table{"tenant": "acme"}
	m := producer.Message{Body: []byte("order-1"), Headers: user, MessageID: "order-1", CorrelationID: "conv-7"}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.PublishSync(sctx, m); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if len(user) != 1 {
		t.Fatalf("the caller's headers were written: %v", user)
	}
	k, err := consumer.New(c, q, consumer.WithHooks(r.tr))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got consumer.Delivery
	runConsumer(t, k, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		_, work := r.tp.Tracer("test").Start(ctx, "store order")
		work.End()
		mu.Lock()
		got = d
		mu.Unlock()
		return consumer.Ack
	})
	cons := r.waitSpans(t, trace.SpanKindConsumer, 1)
	prods := r.spans(trace.SpanKindProducer)
	if len(prods) != 1 || len(cons) != 1 {
		t.Fatalf("%d producer and %d consumer spans, want 1 each", len(prods), len(cons))
	}
	ps, cs := prods[0], cons[0]
	t.Logf("producer span:\n%s", describe(ps))
	t.Logf("consumer span:\n%s", describe(cs))
	mu.Lock()
	if got.Headers["tenant"] != "acme" || got.Headers["traceparent"] == nil {
		t.Errorf("delivered headers %v: want the caller's tenant and a traceparent", got.Headers)
	}
	mu.Unlock()
	tid := parent.SpanContext().TraceID()
	if ps.SpanContext().TraceID() != tid || ps.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("producer span not a child of the publisher's span")
	}
	if cs.SpanContext().TraceID() != tid || cs.Parent().SpanID() != ps.SpanContext().SpanID() || !cs.Parent().IsRemote() {
		t.Errorf("consumer span parent %v, want the producer span %v (remote)", cs.Parent().SpanID(), ps.SpanContext().SpanID())
	}
	if l := cs.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != ps.SpanContext().SpanID() {
		t.Errorf("consumer span links %v, want one to the producer span", l)
	}
	var work bool
	for _, s := range r.sr.Ended() {
		if s.Name() == "store order" {
			work = s.Parent().SpanID() == cs.SpanContext().SpanID()
		}
	}
	if !work {
		t.Errorf("the handler's own span is not a child of the consumer span")
	}
	host, portStr, _ := net.SplitHostPort(testbroker.HostPort(t))
	port, _ := strconv.Atoi(portStr)
	if ps.Name() != "publish "+q || ps.Status().Code != codes.Ok {
		t.Errorf("producer span %q status %v", ps.Name(), ps.Status())
	}
	wantAttrs(t, ps, map[attribute.Key]any{
		semconv.MessagingSystemKey:                        "rabbitmq",
		semconv.MessagingOperationTypeKey:                 "send",
		semconv.MessagingOperationNameKey:                 "publish",
		semconv.MessagingDestinationNameKey:               q,
		semconv.MessagingRabbitMQDestinationRoutingKeyKey: q,
		semconv.MessagingMessageIDKey:                     "order-1",
		semconv.MessagingMessageConversationIDKey:         "conv-7",
		semconv.MessagingClientIDKey:                      c.Name(),
		semconv.ServerAddressKey:                          host,
		semconv.ServerPortKey:                             int64(port),
	})
	if ev := eventNames(ps); len(ev) != 1 || ev[0] != tracing.EventSent {
		t.Errorf("producer events %v, want one sent", ev)
	}
	if cs.Name() != "process "+q {
		t.Errorf("consumer span named %q", cs.Name())
	}
	wantAttrs(t, cs, map[attribute.Key]any{
		semconv.MessagingSystemKey:                     "rabbitmq",
		semconv.MessagingOperationTypeKey:              "process",
		semconv.MessagingOperationNameKey:              "process",
		semconv.MessagingDestinationNameKey:            q, // default exchange, routing key = queue
		semconv.MessagingRabbitMQMessageDeliveryTagKey: int64(got.DeliveryTag),
		semconv.MessagingMessageIDKey:                  "order-1",
		semconv.MessagingMessageConversationIDKey:      "conv-7",
		semconv.ServerAddressKey:                       host,
		semconv.ServerPortKey:                          int64(port),
		tracing.AttrAction:                             "ack",
	})
	if _, ok := attrs(cs)[semconv.ErrorTypeKey]; ok || cs.Status().Code == codes.Error {
		t.Errorf("an acked delivery's span has an error: %v", cs.Status())
	}
	noSecret(t, testbroker.URL(t), r.sr.Ended())
}

// TestResentAfterReconnectIsOneSpan holds a published message in the network
// (a proxy delays what the client sends), closes every connection on the
// broker, and lets the client reconnect: the message is re-sent and
// confirmed. It ends in one producer span with a "sent" and a "re-sent after
// reconnect" event, and one consumer span, its child.
func TestResentAfterReconnectIsOneSpan(t *testing.T) {
	r := newRecorded(t)
	q := declareQueue(t)
	px := testbroker.NewProxy(t)
	c := newClient(t, px.URL)
	sent := &sentSignal{ch: make(chan uint64, 4)}
	p, err := producer.New(c, q, producer.WithHooks(r.tr, sent))
	if err != nil {
		t.Fatal(err)
	}
	// A first message opens the channel (and is left out of the checks).
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := p.PublishSync(wctx, producer.Message{Body: []byte("warm-up"), MessageID: "warm-up"}); err != nil {
		t.Fatal(err)
	}
	<-sent.ch
	px.AddToxic("hold", "latency", "upstream", map[string]any{"latency": 5000})
	ctx, parent := r.tp.Tracer("test").Start(context.Background(), "parent")
	if err := p.Publish(ctx, producer.Message{Body: []byte("survivor"), MessageID: "survivor"}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	select {
	case gen := <-sent.ch:
		if gen != 1 {
			t.Fatalf("first write on connection %d", gen)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message was never written")
	}
	testbroker.CloseAllConnections(t)
	px.RemoveToxic("hold")
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Confirmed != 2 || s.Resent != 1 {
		t.Fatalf("stats %+v: want one message confirmed after one re-send", s)
	}
	k, err := consumer.New(c, q, consumer.WithHooks(r.tr))
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, k, func(context.Context, consumer.Delivery) consumer.Action { return consumer.Ack })
	r.waitSpans(t, trace.SpanKindConsumer, 2)
	time.Sleep(500 * time.Millisecond) // a duplicate delivery would show up by now
	cons := withID(r.spans(trace.SpanKindConsumer), "survivor")
	prods := withID(r.spans(trace.SpanKindProducer), "survivor")
	if len(prods) != 1 || len(cons) != 1 {
		t.Fatalf("%d producer and %d consumer spans, want 1 each", len(prods), len(cons))
	}
	ps, cs := prods[0], cons[0]
	t.Logf("producer span:\n%s", describe(ps))
	t.Logf("consumer span:\n%s", describe(cs))
	if ev := eventNames(ps); len(ev) != 2 || ev[0] != tracing.EventSent || ev[1] != tracing.EventResentReconnect {
		t.Fatalf("producer events %v, want sent then re-sent after reconnect", ev)
	}
	resend := ps.Events()[1]
	var conn int64
	var gap float64
	for _, kv := range resend.Attributes {
		switch kv.Key {
		case tracing.AttrConnection:
			conn = kv.Value.AsInt64()
		case tracing.AttrSinceLastSend:
			gap = kv.Value.AsFloat64()
		}
	}
	if conn < 2 || gap <= 0 {
		t.Fatalf("re-send event on connection %d after %.1f ms, want a later connection and a gap", conn, gap)
	}
	if ps.Status().Code != codes.Ok || attrs(ps)[tracing.AttrSends].AsInt64() != 2 {
		t.Fatalf("producer span status %v sends %v", ps.Status(), attrs(ps)[tracing.AttrSends].AsInt64())
	}
	if cs.SpanContext().TraceID() != parent.SpanContext().TraceID() || cs.Parent().SpanID() != ps.SpanContext().SpanID() {
		t.Fatalf("the consumer span is not the producer span's child")
	}
}

// withID returns the spans of the message with that ID.
func withID(spans []sdktrace.ReadOnlySpan, id string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if attrs(s)[semconv.MessagingMessageIDKey].AsString() == id {
			out = append(out, s)
		}
	}
	return out
}

// sentSignal is a second HookMessage: it reports each write's connection.
type sentSignal struct{ ch chan uint64 }

func (s *sentSignal) OnMessagePublish(context.Context, producer.MessagePublishEvent, *producer.Message) any {
	return nil
}
func (s *sentSignal) OnMessageHeadersRefused(any, error) {}
func (s *sentSignal) OnMessageSent(_ any, ev producer.MessageSentEvent) {
	select {
	case s.ch <- ev.Connection:
	default:
	}
}
func (s *sentSignal) OnMessageNacked(any, int)                           {}
func (s *sentSignal) OnMessageSettled(any, producer.MessageSettledEvent) {}

// closedPortURL returns an AMQP URL, with a password, to a loopback port that
// nothing listens on.
func closedPortURL(t *testing.T) (string, int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "amqp://app:s3cr3t-pw@127.0.0.1:" + strconv.Itoa(port) + "/", port
}

// TestDroppedSpansEndWithTheReason: against a closed port, a buffer of one
// under DropOldest evicts the first message and Close drops the second: both
// spans end with status Error and error.type evicted, shutdown; the URL's
// password is on no span, its host and port are.
func TestDroppedSpansEndWithTheReason(t *testing.T) {
	r := newRecorded(t)
	u, port := closedPortURL(t)
	c, err := lavinmq.New(u, lavinmq.WithReconnectDelay(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "orders", producer.WithHooks(r.tr), producer.WithBufferSize(1), producer.WithPolicy(buffer.DropOldest))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"first", "second"} {
		if err := p.Publish(context.Background(), producer.Message{Body: []byte(id), MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	prods := r.spans(trace.SpanKindProducer)
	if len(prods) != 2 {
		t.Fatalf("%d producer spans, want 2", len(prods))
	}
	want := map[string]string{"first": "evicted", "second": "shutdown"}
	for _, s := range prods {
		t.Logf("%s", describe(s))
		a := attrs(s)
		id := a[semconv.MessagingMessageIDKey].AsString()
		if s.Status().Code != codes.Error || a[semconv.ErrorTypeKey].AsString() != want[id] || a[tracing.AttrSends].AsInt64() != 0 {
			t.Errorf("span of %s: status %v, error.type %q, want Error and %q", id, s.Status(), a[semconv.ErrorTypeKey].AsString(), want[id])
		}
		if a[semconv.ServerAddressKey].AsString() != "127.0.0.1" || a[semconv.ServerPortKey].AsInt64() != int64(port) {
			t.Errorf("span of %s: server %v:%v", id, a[semconv.ServerAddressKey].AsString(), a[semconv.ServerPortKey].AsInt64())
		}
	}
	noSecret(t, u, prods)
}

// TestUnroutableSpan: a message no queue takes ends with error.type unroutable.
func TestUnroutableSpan(t *testing.T) {
	r := newRecorded(t)
	c := newClient(t, testbroker.URL(t))
	p, err := producer.New(c, "events", producer.WithHooks(r.tr), producer.WithExchange("amq.direct", "nobody.listens"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.PublishSync(ctx, producer.Message{Body: []byte("x")}); err == nil {
		t.Fatal("an unroutable message was confirmed")
	}
	prods := r.spans(trace.SpanKindProducer)
	if len(prods) != 1 {
		t.Fatalf("%d producer spans", len(prods))
	}
	s := prods[0]
	t.Logf("%s", describe(s))
	if s.Name() != "publish amq.direct:nobody.listens" || s.Status().Code != codes.Error || attrs(s)[semconv.ErrorTypeKey].AsString() != "unroutable" {
		t.Fatalf("span %q status %v error.type %v", s.Name(), s.Status(), attrs(s)[semconv.ErrorTypeKey].AsString())
	}
	wantAttrs(t, s, map[attribute.Key]any{
		semconv.MessagingDestinationNameKey:               "amq.direct:nobody.listens",
		semconv.MessagingRabbitMQDestinationRoutingKeyKey: "nobody.listens",
	})
}

// TestHandlerPanicIsRecorded: a handler that panics on the first delivery
// gets a span with status Error, error.type panic, an exception event and the
// action nack_requeue; the redelivery's span says redelivered and ack. Both
// are children of the one producer span.
func TestHandlerPanicIsRecorded(t *testing.T) {
	r := newRecorded(t)
	q := declareQueue(t)
	c := newClient(t, testbroker.URL(t))
	p, err := producer.New(c, q, producer.WithHooks(r.tr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.PublishSync(ctx, producer.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	k, err := consumer.New(c, q, consumer.WithHooks(r.tr), consumer.WithMaxRedeliveries(0))
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		if !d.Redelivered {
			panic("cannot parse order")
		}
		return consumer.Ack
	})
	cons := r.waitSpans(t, trace.SpanKindConsumer, 2)
	ps := r.spans(trace.SpanKindProducer)[0]
	first, second := cons[0], cons[1]
	t.Logf("%s%s", describe(first), describe(second))
	if first.Status().Code != codes.Error || attrs(first)[semconv.ErrorTypeKey].AsString() != tracing.ErrorPanic ||
		attrs(first)[tracing.AttrAction].AsString() != "nack_requeue" || len(first.Events()) != 1 || first.Events()[0].Name != "exception" {
		t.Fatalf("the panicking call's span: status %v attrs %v events %v", first.Status(), attrs(first), eventNames(first))
	}
	if attrs(second)[tracing.AttrAction].AsString() != "ack" || !attrs(second)[tracing.AttrRedelivered].AsBool() || second.Status().Code == codes.Error {
		t.Fatalf("the redelivery's span: status %v attrs %v", second.Status(), attrs(second))
	}
	for _, s := range cons {
		if s.Parent().SpanID() != ps.SpanContext().SpanID() {
			t.Fatalf("consumer span %s is not the producer span's child", s.SpanContext().SpanID())
		}
	}
}

// TestMessageWithoutRoomGoesOutWithoutContext: a message whose headers leave
// no room for traceparent (properties at the one-frame limit) is published
// with the caller's headers only; its producer span says so, the producer
// logs it once for two such messages, and the consumer span is not in the
// producer's trace.
func TestMessageWithoutRoomGoesOutWithoutContext(t *testing.T) {
	r := newRecorded(t)
	q := declareQueue(t)
	c := newClient(t, testbroker.URL(t))
	logs := &testbroker.LogBuffer{}
	p, err := producer.New(c, q, producer.WithHooks(r.tr), producer.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	// Properties: 9 length bytes of short strings + the table (4 + 1+3+5+n)
	// must stay within 131072-4096 bytes: n is the most that fits.
	big := amqp.Table{"big": strings.Repeat("x", 131072-4096-22)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if err := p.PublishSync(ctx, producer.Message{Body: []byte("x"), Headers: big}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var headers []amqp.Table
	k, err := consumer.New(c, q, consumer.WithHooks(r.tr))
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		mu.Lock()
		headers = append(headers, d.Headers)
		mu.Unlock()
		return consumer.Ack
	})
	cons := r.waitSpans(t, trace.SpanKindConsumer, 2)
	prods := r.spans(trace.SpanKindProducer)
	mu.Lock()
	defer mu.Unlock()
	for i, h := range headers {
		if _, ok := h["traceparent"]; ok || len(h) != 1 {
			t.Fatalf("delivery %d carries %d headers (traceparent %v), want the caller's one", i, len(h), ok)
		}
	}
	for _, ps := range prods {
		if ev := eventNames(ps); len(ev) != 2 || ev[0] != tracing.EventHeadersNotInjected || ps.Status().Code != codes.Ok {
			t.Fatalf("producer span events %v status %v", ev, ps.Status())
		}
		for _, cs := range cons {
			if cs.SpanContext().TraceID() == ps.SpanContext().TraceID() {
				t.Fatalf("a consumer span is in the producer's trace although no context was sent")
			}
		}
	}
	t.Logf("%s", describe(prods[0]))
	if n := strings.Count(logs.String(), "no room for the headers"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestNackedMessageSpan: a queue that rejects publishes (max length 0,
// reject-publish) nacks every copy: the span has a "nacked" event per nack,
// a "re-sent on a new channel" between them, and ends with error.type nacked
// once the retry budget is spent.
func TestNackedMessageSpan(t *testing.T) {
	r := newRecorded(t)
	q := testbroker.Name(t, "trace-full")
	if _, err := testbroker.Raw(t).QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = testbroker.Raw(t).QueueDelete(q, false, false, false) }()
	c := newClient(t, testbroker.URL(t))
	p, err := producer.New(c, q, producer.WithHooks(r.tr), producer.WithRetryBudget(2),
		producer.WithReopenDelay(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.PublishSync(ctx, producer.Message{Body: []byte("x")}); !errors.Is(err, producer.Nacked) {
		t.Fatalf("PublishSync: %v, want a drop with reason nacked", err)
	}
	prods := r.spans(trace.SpanKindProducer)
	if len(prods) != 1 {
		t.Fatalf("%d producer spans", len(prods))
	}
	s := prods[0]
	t.Logf("%s", describe(s))
	want := []string{tracing.EventSent, tracing.EventNacked, tracing.EventResentChannel, tracing.EventNacked}
	if got := eventNames(s); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
	if s.Status().Code != codes.Error || attrs(s)[semconv.ErrorTypeKey].AsString() != "nacked" || attrs(s)[tracing.AttrSends].AsInt64() != 2 {
		t.Fatalf("status %v, attrs %v", s.Status(), attrs(s))
	}
}
