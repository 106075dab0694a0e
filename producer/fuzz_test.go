package producer_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// FuzzPublishNeverHurtsTheConnection publishes messages whose fields and
// headers the fuzzer shapes (lengths, types, nesting) to the real broker.
// Each one is either refused by Publish (ErrInvalidMessage, ErrTooLarge) or
// confirmed within a bound, and no message ever costs the client its
// connection. make test runs the seed corpus; run it longer with
//
//	LAVINMQ_TEST_URL=... go test -run '^$' -fuzz FuzzPublishNeverHurtsTheConnection -fuzztime 5m ./producer/
func FuzzPublishNeverHurtsTheConnection(f *testing.F) {
	f.Add([]byte("hello"), uint16(10), uint16(0), uint16(0), []byte{})
	f.Add([]byte{}, uint16(255), uint16(255), uint16(255), []byte{0, 200, 1, 2, 3})
	f.Add([]byte("x"), uint16(256), uint16(0), uint16(0), []byte{})
	f.Add([]byte("x"), uint16(0), uint16(256), uint16(0), []byte{16, 128})
	f.Add([]byte("x"), uint16(0), uint16(0), uint16(300), []byte{7})
	f.Add([]byte("x"), uint16(1), uint16(1), uint16(1), []byte{5, 5, 5, 6, 8, 0, 10})
	f.Add([]byte("x"), uint16(1), uint16(1), uint16(1), []byte{6, 1, 2, 3, 9, 11, 12, 13, 14, 15})
	f.Add([]byte("x"), uint16(1), uint16(1), uint16(1), []byte{17, 255, 255})

	dc := &disconnects{}
	c, err := lavinmq.New(testbroker.URL(f), lavinmq.WithHooks(dc))
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	q := declare(f, nil)
	p, err := producer.New(c, q, producer.WithPolicy(buffer.Block), producer.WithMaxMessageSize(1<<20))
	if err != nil {
		f.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()
	f.Fuzz(func(t *testing.T, body []byte, idLen, ctLen, typLen uint16, hdr []byte) {
		m := producer.Message{
			Body:        body,
			MessageID:   strings.Repeat("i", int(idLen%300)),
			ContentType: strings.Repeat("c", int(ctLen%300)),
			Type:        strings.Repeat("t", int(typLen%300)),
			Headers:     fuzzTable(&hdr, 0),
		}
		before := p.Stats()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := p.Publish(ctx, m)
		if err != nil {
			if !errors.Is(err, producer.ErrInvalidMessage) && !errors.Is(err, producer.ErrTooLarge) {
				t.Fatalf("Publish = %v, want nil, ErrInvalidMessage or ErrTooLarge", err)
			}
			return
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatalf("accepted message did not settle: %v", err)
		}
		after := p.Stats()
		if after.Confirmed != before.Confirmed+1 || after.Dropped != before.Dropped {
			t.Fatalf("accepted message not confirmed: before %+v after %+v", before, after)
		}
		if n := dc.n.Load(); n != 0 {
			t.Fatalf("the client lost its connection %d times, last: %v", n, dc.last.Load())
		}
	})
}

// fuzzTable builds a header table from the fuzzer's bytes: each byte picks
// a key shape and a value type, including types amqp091-go cannot encode.
func fuzzTable(b *[]byte, depth int) amqp.Table {
	if len(*b) == 0 {
		return nil
	}
	t := amqp.Table{}
	for i := 0; len(*b) > 0 && i < 16; i++ {
		op := next(b)
		key := "k" + string(rune('a'+i))
		if op >= 200 { // a long key: 200..255 -> 200..510 bytes
			key = strings.Repeat("K", 2*int(op)-200)
			op = next(b)
		}
		t[key] = fuzzValue(b, op, depth)
	}
	return t
}

func fuzzValue(b *[]byte, op byte, depth int) any {
	switch op % 18 {
	case 0:
		return strings.Repeat("s", int(next(b))*4)
	case 1:
		return int32(next(b))
	case 2:
		return int64(next(b)) << 40
	case 3:
		return next(b)%2 == 0
	case 4:
		return []byte(strings.Repeat("b", int(next(b))))
	case 5:
		if depth > 3 {
			return nil
		}
		return fuzzTable(b, depth+1)
	case 6:
		if depth > 3 {
			return nil
		}
		n := int(next(b) % 4)
		a := make([]any, 0, n)
		for range n {
			a = append(a, fuzzValue(b, next(b), depth+1))
		}
		return a
	case 7:
		return uint(next(b))
	case 8:
		return []string{"a"}
	case 9:
		return float64(next(b)) / 3
	case 10:
		return nil
	case 11:
		return time.Unix(int64(next(b))<<20, 0)
	case 12:
		return amqp.Decimal{Scale: 2, Value: int32(next(b))}
	case 13:
		return int8(next(b))
	case 14:
		return uint16(next(b))
	case 15:
		return int(next(b)) << 33 // over int32: amqp091-go would truncate
	case 16:
		return strings.Repeat("L", int(next(b))*1024) // up to 255 KiB: over one frame
	default:
		return map[string]any{"x": math.Pi}
	}
}

func next(b *[]byte) byte {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return v
}
