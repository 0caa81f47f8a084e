package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hearthcdn/hearth/node"
)

// source is one gateway a Fetcher reads from, with its health.
type source struct {
	base string // absolute URL without a trailing slash

	mu          sync.Mutex
	droppedAt   time.Time // zero: not dropped
	dropReason  error
	failures    int       // consecutive failures
	coolUntil   time.Time // skipped while healthier sources remain
	blocks      int64
	bytes       int64
	lastFailure error
}

// parseSource checks that s is an absolute http or https URL and returns
// its base form. Errors wrap ErrBadURL.
func parseSource(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("source %q: %v: %w", s, err, ErrBadURL)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("source %q: want http://host[:port][/prefix] or https://…: %w", s, ErrBadURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("source %q: no query, fragment or user info allowed: %w", s, ErrBadURL)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// ParseSources splits a comma-separated list of gateway URLs and checks
// each (see ErrBadURL). Duplicates are removed; order is kept.
func ParseSources(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		b, err := parseSource(s)
		if err != nil {
			return nil, err
		}
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no source URL in %q: %w", list, ErrBadURL)
	}
	return out, nil
}

// usable reports whether s may be tried now, and whether it is cooling down.
func (s *source) usable(now time.Time, dropFor time.Duration) (ok, cooling bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.droppedAt.IsZero() {
		if dropFor <= 0 || now.Sub(s.droppedAt) < dropFor {
			return false, false
		}
		s.droppedAt, s.dropReason, s.failures = time.Time{}, nil, 0
	}
	return true, now.Before(s.coolUntil)
}

func (s *source) succeeded(bytes int) {
	s.mu.Lock()
	s.failures = 0
	s.coolUntil = time.Time{}
	s.blocks++
	s.bytes += int64(bytes)
	s.mu.Unlock()
}

// failed records a failure and starts a cool-down doubling from 250 ms to 30 s.
func (s *source) failed(now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	s.lastFailure = err
	d := min(250*time.Millisecond<<min(s.failures-1, 7), 30*time.Second)
	s.coolUntil = now.Add(d)
}

// drop takes s out of rotation; it reports whether s was in rotation.
func (s *source) drop(now time.Time, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.droppedAt.IsZero()
	s.droppedAt, s.dropReason = now, err
	return was
}

// SourceStatus describes one source of a Fetcher.
type SourceStatus struct {
	URL        string
	Dropped    bool
	DropReason error // why it was dropped
	Failures   int   // consecutive failures
	Blocks     int64 // blocks received from it
	Bytes      int64 // bytes of those blocks
}

func (s *source) status() SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SourceStatus{URL: s.base, Dropped: !s.droppedAt.IsZero(), DropReason: s.dropReason,
		Failures: s.failures, Blocks: s.blocks, Bytes: s.bytes}
}

// classify sorts a failed attempt: lied (drop the source), notHere (the
// source lacks the content: try another, no penalty), fatal (the content
// itself is bad: no other source can help) or else a transient failure.
func classify(err error) (lied, notHere, fatal bool) {
	switch {
	case errors.Is(err, ErrLied):
		return true, false, false
	case errors.Is(err, node.ErrNotFound):
		return false, true, false
	case errors.Is(err, node.ErrBadNode), errors.Is(err, node.ErrNoSuchPath),
		errors.Is(err, node.ErrNotDir), errors.Is(err, node.ErrUnsupportedCodec),
		errors.Is(err, node.ErrUnsupportedHash), errors.Is(err, ErrExceedsLimit):
		return false, false, true
	}
	return false, false, false
}
