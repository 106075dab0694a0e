package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpRecoveryPeer is amqp091-go v1.16 with its own recovery turned on,
// written the way the library shows it:
//
//   - Connection: amqp.DialConfig(url, amqp.Config{Recovery: &amqp.Recovery{}}),
//     as in the module's _examples/recovery/recovery.go. A non-nil Recovery with
//     nil fields takes DefaultReconnectionConfig (5 retries, 5 s apart),
//     DefaultConnectionRecovery and DefaultTopologyRecovery (recovery.go): the
//     connection, its channels (with their QoS and confirm mode), the declared
//     topology and the consumers come back by themselves.
//   - Publishing: Channel.Confirm, then PublishWithDeferredConfirmWithContext,
//     whose DeferredConfirmation "allow[s] the caller to wait on the publisher
//     confirmation for this message" (channel.go); awaited through Done/Acked.
//     On a reset the library nacks the confirmations still pending
//     (confirms.reset -> deferredConfirmations.Close -> setAck(false)): the
//     caller is told, and must publish those again itself.
//   - A failed publish: the recovery example logs it, sleeps 10 ms "to let the
//     notifier run", waits while the connection's NotifyStateChange says
//     StateReconnecting, and retries the same message. retryWait does that.
//   - Consuming: Channel.Qos(100), Channel.Consume with manual acks, Delivery.Ack
//     for each ("Note: Consume channel does not close during automatic
//     recovery", says the example).
type amqpRecoveryPeer struct {
	conn         *amqp.Connection
	ch           *amqp.Channel
	q            string
	reconnecting atomic.Bool  // written by the state goroutine from NotifyStateChange
	reconnects   atomic.Int64 // StateReconnecting -> StateOpen transitions
	states       chan *amqp.StateChanged
	stateDone    chan struct{}
}

func newAMQPRecoveryPeer(url, q string) (*amqpRecoveryPeer, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Recovery: &amqp.Recovery{}})
	if err != nil {
		return nil, err
	}
	p := &amqpRecoveryPeer{conn: conn, q: q, states: make(chan *amqp.StateChanged, 16), stateDone: make(chan struct{})}
	conn.NotifyStateChange(p.states)
	go func() { // the example's state goroutine; it ends when the library closes the channel
		defer close(p.stateDone)
		for sc := range p.states {
			switch sc.To {
			case amqp.StateReconnecting:
				p.reconnecting.Store(true)
			case amqp.StateOpen:
				if p.reconnecting.Swap(false) {
					p.reconnects.Add(1)
				}
			case amqp.StateClosed:
				p.reconnecting.Store(false)
			}
		}
	}()
	if p.ch, err = conn.Channel(); err != nil {
		conn.Close()
		return nil, err
	}
	if err := p.ch.Confirm(false); err != nil {
		conn.Close()
		return nil, err
	}
	return p, nil
}

func (p *amqpRecoveryPeer) publish(ctx context.Context, b []byte) (*amqp.DeferredConfirmation, error) {
	return p.ch.PublishWithDeferredConfirmWithContext(ctx, "", p.q, false, false,
		amqp.Publishing{Body: b, DeliveryMode: amqp.Persistent})
}

// retryWait: the recovery example's publisher after an error (10 ms, then
// wait while reconnecting), bounded by ctx.
func (p *amqpRecoveryPeer) retryWait(ctx context.Context) {
	sleepCtx(ctx, 10*time.Millisecond)
	for p.reconnecting.Load() && ctx.Err() == nil {
		sleepCtx(ctx, 5*time.Millisecond)
	}
}

func (p *amqpRecoveryPeer) consume(ctx context.Context, n int) error {
	if err := p.ch.Qos(100, 0, false); err != nil {
		return err
	}
	ds, err := p.ch.Consume(p.q, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for got := 0; got < n; {
		select {
		case d, ok := <-ds:
			if !ok {
				return fmt.Errorf("deliveries closed after %d of %d", got, n)
			}
			if err := d.Ack(false); err != nil {
				return err
			}
			got++
		case <-ctx.Done():
			return fmt.Errorf("consumed %d of %d: %w", got, n, ctx.Err())
		}
	}
	return nil
}

func (p *amqpRecoveryPeer) note() string {
	if n := p.reconnects.Load(); n > 0 {
		return fmt.Sprintf("Config.Recovery reconnected %d time(s)", n)
	}
	return ""
}

func (p *amqpRecoveryPeer) close() {
	_ = p.conn.Close()
	select { // the library closes the state channel on Close
	case <-p.stateDone:
	case <-time.After(5 * time.Second):
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
