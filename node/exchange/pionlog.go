package exchange

import (
	"fmt"

	"github.com/pion/logging"

	"github.com/hearthcdn/hearth/internal/logx"
)

// pionLogs routes pion's logs to the logger at debug level, so that the library
// never writes to stderr itself; pion's own warnings are mostly about
// conditions that are normal here (a closed connection, a dropped packet).
type pionLogs struct{ log *logx.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: p.log, scope: scope}
}

type pionLogger struct {
	log   *logx.Logger
	scope string
}

func (l pionLogger) emit(level string, msg string) {
	l.log.Debug("exchange: pion", "scope", l.scope, "level", level, "msg", msg)
}

func (l pionLogger) emitf(level, format string, args ...any) {
	if logx.DebugEnabled(l.log) {
		l.emit(level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(string)                 {}
func (l pionLogger) Tracef(string, ...any)        {}
func (l pionLogger) Debug(msg string)             { l.emitf("debug", "%s", msg) }
func (l pionLogger) Debugf(f string, args ...any) { l.emitf("debug", f, args...) }
func (l pionLogger) Info(msg string)              { l.emitf("info", "%s", msg) }
func (l pionLogger) Infof(f string, args ...any)  { l.emitf("info", f, args...) }
func (l pionLogger) Warn(msg string)              { l.emitf("warn", "%s", msg) }
func (l pionLogger) Warnf(f string, args ...any)  { l.emitf("warn", f, args...) }
func (l pionLogger) Error(msg string)             { l.emitf("error", "%s", msg) }
func (l pionLogger) Errorf(f string, args ...any) { l.emitf("error", f, args...) }
