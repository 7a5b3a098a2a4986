package offstack

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

// Functions that block hold only their own goroutines: a call beside them
// runs at once, and once they return the runner shrinks back to maxIdle
// idle goroutines, then to none after Close.
func TestBlockedCallsHoldOnlyTheirGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New(2, 0)
		release := make(chan struct{})
		for range 5 {
			if err := r.Go(t.Context(), func() { <-release }); err != nil {
				t.Fatal(err)
			}
		}
		ran := make(chan struct{})
		if err := r.Go(t.Context(), func() { close(ran) }); err != nil {
			t.Fatal(err)
		}
		<-ran // a deadlock here fails the test: it waited behind the blocked calls
		synctest.Wait()
		if running, idle := r.Goroutines(); running != 6 || idle != 1 {
			t.Fatalf("with 5 calls blocked and one done: %d goroutines, %d idle; want 6, 1", running, idle)
		}

		close(release)
		synctest.Wait()
		if running, idle := r.Goroutines(); running != 2 || idle != 2 {
			t.Fatalf("after the burst: %d goroutines, %d idle; want 2, 2", running, idle)
		}
		r.Close()
		r.Wait()
		if running, _ := r.Goroutines(); running != 0 {
			t.Fatalf("after Close: %d goroutines", running)
		}
		// A call after Close still runs, on a goroutine of its own.
		ran = make(chan struct{})
		if err := r.Go(t.Context(), func() { close(ran) }); err != nil {
			t.Fatal(err)
		}
		<-ran
	})
}

// A bounded runner runs at most its bound at once: a call beyond it waits
// for a goroutine to be free, or gives up with its context, not running.
func TestBoundedRunnerWaitsItsTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New(0, 2)
		defer r.Wait()
		defer r.Close()
		release := make(chan struct{})
		for range 2 {
			if err := r.Go(t.Context(), func() { <-release }); err != nil {
				t.Fatal(err)
			}
		}

		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error)
		go func() {
			gaveUp <- r.Go(ctx, func() { t.Error("a call that gave up ran") })
		}()
		synctest.Wait()
		if running, _ := r.Goroutines(); running != 2 {
			t.Fatalf("%d goroutines, want the bound, 2", running)
		}
		cancel()
		if err := <-gaveUp; !errors.Is(err, context.Canceled) {
			t.Fatalf("a call whose context ended while it waited: %v, want context.Canceled", err)
		}

		ran := make(chan struct{})
		queued := make(chan error)
		go func() { queued <- r.Go(t.Context(), func() { close(ran) }) }()
		synctest.Wait()
		select {
		case <-ran:
			t.Fatal("a call beyond the bound ran while both goroutines were busy")
		default:
		}
		close(release)
		if err := <-queued; err != nil {
			t.Fatal(err)
		}
		<-ran
		synctest.Wait()
		if running, idle := r.Goroutines(); running != 2 || idle != 2 {
			t.Fatalf("a bounded runner keeps its goroutines: %d, %d idle; want 2, 2", running, idle)
		}
	})
}
