package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
)

// TestTwoClientsOnOneRegistryKeepTheirOwnSeries: two clients with different
// connection names share one Metrics value and one registry. Client a goes
// through a proxy that is then switched off: while a is down, its gauge says
// 0 and the other's 1; its failed attempts and its reconnect are counted
// for a only.
func TestTwoClientsOnOneRegistryKeepTheirOwnSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	px := testbroker.NewProxy(t)
	nameA, nameB := testbroker.Name(t, "a"), testbroker.Name(t, "b")
	delay := lavinmq.WithReconnectDelay(50*time.Millisecond, 200*time.Millisecond)
	a, err := lavinmq.New(px.URL, lavinmq.WithConnectionName(nameA), lavinmq.WithHooks(m), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := lavinmq.New(testbroker.URL(t), lavinmq.WithConnectionName(nameB), lavinmq.WithHooks(m), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []*lavinmq.Client{a, b} {
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
	}
	la, lb := map[string]string{"client": nameA}, map[string]string{"client": nameB}
	if ga, gb := value(t, reg, "lavinmq_client_connected", la), value(t, reg, "lavinmq_client_connected", lb); ga != 1 || gb != 1 {
		t.Fatalf("connected a=%v b=%v after both connected, want 1 and 1", ga, gb)
	}

	px.Disable() // closes a's connection and refuses its dials
	testbroker.Eventually(t, 10*time.Second, "client a disconnected and retrying", func() bool {
		return sample(reg, "lavinmq_client_connected", la) == 0 && sample(reg, "lavinmq_client_reconnect_attempts_total", la) >= 2
	})
	downA, upB := value(t, reg, "lavinmq_client_connected", la), value(t, reg, "lavinmq_client_connected", lb)
	attemptsA, attemptsB := value(t, reg, "lavinmq_client_reconnect_attempts_total", la), value(t, reg, "lavinmq_client_reconnect_attempts_total", lb)
	t.Logf("while a is down: connected a=%v b=%v, reconnect attempts a=%v b=%v", downA, upB, attemptsA, attemptsB)
	if downA != 0 || upB != 1 || attemptsB != 0 || !b.Connected() {
		t.Fatalf("while a is down: connected a=%v b=%v, attempts b=%v (b connected: %v); want 0, 1, 0", downA, upB, attemptsB, b.Connected())
	}

	px.Enable()
	testbroker.Eventually(t, 10*time.Second, "client a reconnected", func() bool {
		return sample(reg, "lavinmq_client_connected", la) == 1
	})
	got := map[string]float64{}
	for _, name := range []string{"lavinmq_client_reconnects_total", "lavinmq_client_disconnected_seconds"} {
		got[name+" a"] = value(t, reg, name, la)
		got[name+" b"] = value(t, reg, name, lb)
	}
	lossA := sample(reg, "lavinmq_client_disconnects_total", map[string]string{"client": nameA, "reason": "notify"}) +
		sample(reg, "lavinmq_client_disconnects_total", map[string]string{"client": nameA, "reason": "poll"})
	lossB := sample(reg, "lavinmq_client_disconnects_total", map[string]string{"client": nameB, "reason": "notify"}) +
		sample(reg, "lavinmq_client_disconnects_total", map[string]string{"client": nameB, "reason": "poll"})
	t.Logf("after a reconnected: %v, disconnects a=%v b=%v, downtime of a %.3fs", got, lossA, lossB,
		histogramSum(t, reg, "lavinmq_client_disconnected_seconds", la))
	if got["lavinmq_client_reconnects_total a"] != 1 || got["lavinmq_client_reconnects_total b"] != 0 ||
		got["lavinmq_client_disconnected_seconds a"] != 1 || got["lavinmq_client_disconnected_seconds b"] != 0 || lossA != 1 || lossB != 0 {
		t.Fatalf("reconnect series counted for the wrong client: %v, disconnects a=%v b=%v", got, lossA, lossB)
	}
	if g := value(t, reg, "lavinmq_client_connected", lb); g != 1 {
		t.Fatalf("connected b = %v at the end, want 1", g)
	}
	checkLabels(t, reg)
	lintClean(t, reg)
}
