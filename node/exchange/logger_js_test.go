//go:build js

package exchange

import (
	"os"
	"testing"

	"github.com/hearthcdn/hearth/internal/logx"
)

// testLogger logs through t at debug level when HEARTH_TEST_LOG is set.
func testLogger(t testing.TB) *logx.Logger {
	if os.Getenv("HEARTH_TEST_LOG") == "" {
		return logx.Discard()
	}
	return logx.New(logx.LevelDebug, func(_ logx.Level, msg, attrs string) { t.Log(msg, attrs) })
}
