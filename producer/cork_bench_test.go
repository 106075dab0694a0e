package producer_test

import (
	"testing"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// BenchmarkCork compares the producer with write coalescing (the default)
// and without, in the same run, and the confirm window with corked writes:
//
//	LAVINMQ_TEST_URL=... go test -run '^$' -bench Cork -benchtime 100000x -count 3 ./producer/
func BenchmarkCork(b *testing.B) {
	body := make([]byte, 16)
	for _, bc := range []struct {
		name string
		mode producer.Mode
		cork bool
		opts []producer.Option
	}{
		{"fire_and_forget/corked", producer.FireAndForget, true, nil},
		{"fire_and_forget/off", producer.FireAndForget, false, nil},
		{"confirm/corked", producer.Confirm, true, nil},
		{"confirm/off", producer.Confirm, false, nil},
		{"confirm/corked-window-5000", producer.Confirm, true, []producer.Option{producer.WithMaxInFlight(5000)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchSDKClient(b, []lavinmq.Option{lavinmq.WithWriteCoalescing(bc.cork)}, bc.mode, body, bc.opts...)
		})
	}
}
