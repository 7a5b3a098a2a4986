package hub

import (
	"sync"
	"time"
)

// deadlines hands out channels that close at a deadline, rounded up to a
// coarse resolution. Held reads that time out in the same slot share one
// channel and one timer, so thousands of held reads cost a few hundred map
// entries instead of a runtime timer each.
type deadlines struct {
	resolution time.Duration

	mu     sync.Mutex
	slots  map[int64]chan struct{}
	timer  *time.Timer
	armed  int64 // slot the timer fires for; 0 when idle
	closed bool
}

func newDeadlines(resolution time.Duration) *deadlines {
	return &deadlines{resolution: resolution, slots: make(map[int64]chan struct{})}
}

// after returns a channel that is closed once d has passed (up to one
// resolution later), or when the deadlines are stopped.
func (dl *deadlines) after(d time.Duration) <-chan struct{} {
	res := int64(dl.resolution)
	slot := (time.Now().UnixNano() + int64(d) + res - 1) / res
	dl.mu.Lock()
	defer dl.mu.Unlock()
	ch := dl.slots[slot]
	if ch == nil {
		ch = make(chan struct{})
		if dl.closed {
			close(ch)
			return ch
		}
		dl.slots[slot] = ch
		if dl.armed == 0 || slot < dl.armed {
			dl.arm(slot)
		}
	}
	return ch
}

// arm sets the timer for slot; dl.mu is held.
func (dl *deadlines) arm(slot int64) {
	wait := time.Until(time.Unix(0, slot*int64(dl.resolution)))
	dl.armed = slot
	if dl.timer == nil {
		dl.timer = time.AfterFunc(wait, dl.fire)
	} else {
		dl.timer.Reset(wait)
	}
}

func (dl *deadlines) fire() {
	now := time.Now().UnixNano() / int64(dl.resolution)
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.armed = 0
	var next int64
	for slot, ch := range dl.slots {
		if slot <= now {
			close(ch)
			delete(dl.slots, slot)
		} else if next == 0 || slot < next {
			next = slot
		}
	}
	if next != 0 && !dl.closed {
		dl.arm(next)
	}
}

// stop closes every pending channel and refuses new deadlines.
func (dl *deadlines) stop() {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.closed = true
	if dl.timer != nil {
		dl.timer.Stop()
	}
	for slot, ch := range dl.slots {
		close(ch)
		delete(dl.slots, slot)
	}
}
