package tracing_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testbroker.LeakOptions()...) }
