//go:build js

package logx

import (
	"fmt"
	"os"
	"strings"
)

// Level is a record's importance; the values are slog's.
type Level int

// Levels, as in log/slog.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// String returns "DEBUG", "INFO", "WARN" or "ERROR" (slog's names).
func (l Level) String() string {
	switch {
	case l < LevelInfo:
		return "DEBUG"
	case l < LevelWarn:
		return "INFO"
	case l < LevelError:
		return "WARN"
	}
	return "ERROR"
}

// Output receives each record at or above the logger's level: its level,
// its message and the record's attributes rendered as " key=value" pairs
// (values with %v).
type Output func(level Level, msg, attrs string)

// Logger is a leveled logger: records below its level are dropped, the rest
// go to its Output. The methods take a message then alternating keys and
// values, like slog.Logger's; a nil *Logger or one without Output drops
// everything. Safe for concurrent use if its Output is.
type Logger struct {
	min Level
	out Output
}

// New returns a logger of the records at min and above, to out.
func New(min Level, out Output) *Logger { return &Logger{min: min, out: out} }

// Discard returns a logger that drops everything.
func Discard() *Logger { return &Logger{} }

// Default returns a logger of info and above to standard error (the
// console), as slog.Default() logs.
func Default() *Logger {
	return New(LevelInfo, func(l Level, msg, attrs string) {
		fmt.Fprintf(os.Stderr, "%s %s%s\n", l, msg, attrs)
	})
}

// DebugEnabled reports whether l logs at debug level.
func DebugEnabled(l *Logger) bool { return l.enabled(LevelDebug) }

func (l *Logger) enabled(level Level) bool { return l != nil && l.out != nil && level >= l.min }

func (l *Logger) log(level Level, msg string, args []any) {
	if !l.enabled(level) {
		return
	}
	var b strings.Builder
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			fmt.Fprintf(&b, " !BADKEY=%v", args[i])
			break
		}
		fmt.Fprintf(&b, " %v=%v", args[i], args[i+1])
	}
	l.out(level, msg, b.String())
}

// Debug logs at LevelDebug.
func (l *Logger) Debug(msg string, args ...any) { l.log(LevelDebug, msg, args) }

// Info logs at LevelInfo.
func (l *Logger) Info(msg string, args ...any) { l.log(LevelInfo, msg, args) }

// Warn logs at LevelWarn.
func (l *Logger) Warn(msg string, args ...any) { l.log(LevelWarn, msg, args) }

// Error logs at LevelError.
func (l *Logger) Error(msg string, args ...any) { l.log(LevelError, msg, args) }
