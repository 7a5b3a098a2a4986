package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// startProgress prints line() every interval until the returned stop is
// called (stop may be called more than once). reads feeds the reads/s
// figure.
func startProgress(every time.Duration, w io.Writer, line func(time.Duration, float64) string, reads func() int64) (stop func()) {
	if every <= 0 || w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		tick := time.NewTicker(every)
		defer tick.Stop()
		last, lastAt := reads(), start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := reads()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				fmt.Fprintln(w, line(now.Sub(start), rate))
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
