package lavinmq

import "time"

// IgnoreCloseNotifyForTest makes the client ignore amqp091-go's close
// notification, so that only the health poll can detect a lost connection.
func IgnoreCloseNotifyForTest() Option {
	return optionFunc(func(c *cfg) { c.ignoreCloseNotify = true })
}

// WithAfterForTest replaces time.After in the reconnect wait.
func WithAfterForTest(after func(time.Duration) <-chan time.Time) Option {
	return optionFunc(func(c *cfg) { c.after = after })
}
