package consumer

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// declare declares the queue for WithDeclare through the Client. If the
// application has recorded its own declaration of the queue on the Client,
// that one is declared again as it is (the consumer never replaces it);
// otherwise a durable queue with WithDeclare's arguments. A refusal as
// inequivalent (406) or locked (405) is a configuration error: ErrDeclare.
func (k *Consumer) declare(ctx context.Context) error {
	q, ok := k.client.RecordedQueue(k.queue)
	if !ok {
		q = lavinmq.Queue{Name: k.queue, Durable: true, Args: k.cfg.declareArgs}
	}
	_, err := k.client.DeclareQueue(ctx, q)
	var ae *amqp.Error
	if errors.As(err, &ae) && (ae.Code == amqp.PreconditionFailed || ae.Code == amqp.ResourceLocked) {
		return fmt.Errorf("%w: queue %q: %w", ErrDeclare, k.queue, err)
	}
	return err
}

// SubscribeErr returns the error of the last failed subscribe attempt of the
// active Run (a 404 for a queue that does not exist, a 403, a 405 for an
// exclusive queue or consumer...), or nil while subscribed and before the
// first attempt. Run retries such failures with backoff and logs them only at
// warning level, so this is where an application finds why nothing arrives.
func (k *Consumer) SubscribeErr() error {
	k.subMu.Lock()
	defer k.subMu.Unlock()
	return k.subErr
}

func (k *Consumer) setSubErr(err error) {
	k.subMu.Lock()
	k.subErr = err
	k.subMu.Unlock()
}

func (k *Consumer) subscribeFailed(err error, attempt int) {
	k.setSubErr(err)
	k.eachHook(func(h any) {
		if h, ok := h.(HookSubscribeFailed); ok {
			h.OnSubscribeFailed(k.queue, err, attempt)
		}
	})
}
