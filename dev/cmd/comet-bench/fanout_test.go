package main

import (
	"context"
	"testing"
	"time"
)

// The drain waits for acknowledged messages only, wakes on each delivery,
// and gives up at its timeout.
func TestAwaitDeliveries(t *testing.T) {
	pool := &readerPool{tally: newTally(2, 3), delivered: make(chan struct{}, 1)}
	acked := []bool{true, false, true} // message 1's publish failed
	owed := func(int) int { return 2 }
	for r := range 2 {
		pool.tally.deliver(r, 0)
	}
	pool.tally.deliver(0, 2)
	if awaitDeliveries(context.Background(), 20*time.Millisecond, pool, acked, owed) {
		t.Fatal("complete although reader 1 lacks message 2")
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		pool.tally.deliver(1, 2)
		pool.delivered <- struct{}{}
	}()
	if !awaitDeliveries(context.Background(), 10*time.Second, pool, acked, owed) {
		t.Error("not complete after the last delivery")
	}
}
