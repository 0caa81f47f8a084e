package origin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch republishes cfg.Source whenever it changes, until ctx ends (then
// it returns nil). Changes are debounced: a republish starts once no
// change has been seen for Debounce, or 10 Debounce periods after the
// first of a continuous stream. Symlinked directories are watched too,
// since publishing follows them. A failed republish (a file vanished
// mid-import) is retried after the next Debounce.
func (o *Origin) Watch(ctx context.Context) error {
	if o.cfg.Source == "" {
		return errors.New("watching: no source directory configured")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", o.cfg.Source, err)
	}
	defer w.Close()
	if err := o.addTree(w, o.cfg.Source); err != nil {
		return err
	}
	debounce := o.cfg.Debounce
	maxWait := 10 * debounce
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time // first change not yet published; zero: none
	schedule := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		delay := debounce
		if waited := now.Sub(first); waited+delay > maxWait {
			delay = max(0, maxWait-waited)
		}
		timer.Reset(delay)
	}
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := o.addTree(w, ev.Name); err != nil {
						o.log.Warn("watching new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			schedule()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: republish to be sure.
			o.log.Warn("watch error", "err", err)
			schedule()
		case <-timer.C:
			first = time.Time{}
			if _, _, err := o.Publish(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.log.Warn("republishing failed; retrying", "err", err)
				schedule()
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// addTree watches dir and every directory below it, following symlinks
// (each real directory once).
func (o *Origin) addTree(w *fsnotify.Watcher, dir string) error {
	seen := map[string]bool{}
	var walk func(string) error
	walk = func(p string) error {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // vanished
		}
		if seen[real] {
			return nil
		}
		seen[real] = true
		if err := w.Add(p); err != nil {
			return fmt.Errorf("watching %s: %w", p, err)
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("watching %s: %w", p, err)
		}
		for _, e := range ents {
			child := filepath.Join(p, e.Name())
			if e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
				if fi, err := os.Stat(child); err == nil && fi.IsDir() {
					if err := walk(child); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	if !fi.IsDir() {
		// A single file: watch its directory (editors replace files by rename).
		return w.Add(filepath.Dir(dir))
	}
	return walk(dir)
}
