//go:build js

package logx

import (
	"errors"
	"testing"
	"time"
)

func TestLoggerLevelsAndAttrs(t *testing.T) {
	var got []string
	l := New(LevelInfo, func(level Level, msg, attrs string) {
		got = append(got, level.String()+" "+msg+attrs)
	})
	l.Debug("hidden", "k", 1)
	l.Info("connected", "url", "ws://x/ws", "retry_in", 250*time.Millisecond)
	l.Warn("refused", "err", errors.New("nope"))
	l.Error("odd", "k")
	want := []string{
		"INFO connected url=ws://x/ws retry_in=250ms",
		"WARN refused err=nope",
		"ERROR odd !BADKEY=k",
	}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if DebugEnabled(l) {
		t.Error("debug enabled on an info logger")
	}
	if !DebugEnabled(New(LevelDebug, func(Level, string, string) {})) {
		t.Error("debug disabled on a debug logger")
	}
}

func TestDiscardAndNil(t *testing.T) {
	var nilLogger *Logger
	for _, l := range []*Logger{Discard(), nilLogger} {
		l.Error("dropped", "k", "v")
		if DebugEnabled(l) {
			t.Error("a discarding logger logs debug")
		}
	}
}
