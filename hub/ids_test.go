package hub_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

func TestValidateIDs(t *testing.T) {
	cases := []struct {
		name   string
		id     string
		detail string // empty: valid
		pipeOK bool   // valid as a client id, not as a channel id
	}{
		{"ascii", "news", "", false},
		{"unicode", "chat/ü 😀", "", false},
		{"256 bytes", strings.Repeat("a", hub.MaxIDLength), "", false},
		{"256 bytes of 4-byte runes", strings.Repeat("😀", hub.MaxIDLength/4), "", false},
		{"empty", "", "empty", false},
		{"257 bytes", strings.Repeat("a", hub.MaxIDLength+1), "longer than 256 bytes", false},
		{"bad utf-8", "\xff", "not valid UTF-8", false},
		{"surrogate half", "a\xed\xa0\x80", "not valid UTF-8", false},
		{"nul", "\x00", "contains a control character", false},
		{"escape", "a\x1bb", "contains a control character", false},
		{"del", "\x7f", "contains a control character", false},
		{"c1 control", "\u009f", "contains a control character", false},
		{"pipe", "a|b", "contains '|'", true},
		{"pipe alone", "|", "contains '|'", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := func(kind string, err error, want *hub.Error, detail string) {
				t.Helper()
				if detail == "" {
					if err != nil {
						t.Fatalf("%s id %q: %v, want valid", kind, tc.id, err)
					}
					return
				}
				if !errors.Is(err, want) {
					t.Fatalf("%s id %q: %v, want %v", kind, tc.id, err, want)
				}
				e := hub.AsError(err)
				if e.Code != hub.CodeBadRequest || e.Detail != detail {
					t.Fatalf("%s id %q: code %d detail %q, want %d and %q", kind, tc.id, e.Code, e.Detail, hub.CodeBadRequest, detail)
				}
			}
			check("channel", hub.ValidateChannelID(tc.id), hub.ErrInvalidChannelID, tc.detail)
			clientDetail := tc.detail
			if tc.pipeOK {
				clientDetail = ""
			}
			check("client", hub.ValidateClientID(tc.id), hub.ErrInvalidClientID, clientDetail)
		})
	}
}

// Ids count 10-microsecond ticks since the Unix epoch, as the original's did.
func TestClockID(t *testing.T) {
	cases := []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(0, 0), 0},
		{time.UnixMicro(9), 0},
		{time.UnixMicro(10), 1},
		{time.UnixMicro(19), 1},
		{time.Unix(1289160231, 0), 128916023100000},
		{time.Unix(1289160158, 467850000), 128916015846785},
	}
	for _, tc := range cases {
		if got := hub.ClockID(tc.t); got != tc.want {
			t.Errorf("ClockID(%v) = %d, want %d", tc.t, got, tc.want)
		}
	}
	// JavaScript reads ids exactly for millennia to come.
	if id := hub.ClockID(time.Date(4800, 1, 1, 0, 0, 0, 0, time.UTC)); id >= 1<<53 {
		t.Errorf("id in the year 4800: %d, not below 2^53", id)
	}
}

func TestIDClock(t *testing.T) {
	var c hub.IDClock
	if c.Last() != 0 {
		t.Fatalf("zero clock: last %d, want 0", c.Last())
	}
	now := time.Now()
	steps := []struct {
		name string
		at   time.Time
		want int64
	}{
		{"first id is the clock's", now, hub.ClockID(now)},
		{"same tick", now, hub.ClockID(now) + 1},
		{"same tick again", now, hub.ClockID(now) + 2},
		{"clock went back an hour", now.Add(-time.Hour), hub.ClockID(now) + 3},
		{"clock went back to the epoch", time.Unix(0, 0), hub.ClockID(now) + 4},
		{"clock jumped ahead", now.Add(time.Second), hub.ClockID(now.Add(time.Second))},
		{"clock back again", now, hub.ClockID(now.Add(time.Second)) + 1},
	}
	for _, s := range steps {
		if got := c.Next(s.at); got != s.want {
			t.Fatalf("%s: id %d, want %d", s.name, got, s.want)
		}
		if c.Last() != s.want {
			t.Fatalf("%s: last %d, want %d", s.name, c.Last(), s.want)
		}
	}
}

// Concurrent callers get unique ids, each caller's strictly increasing.
func TestIDClockConcurrent(t *testing.T) {
	const goroutines, each = 8, 2000
	var c hub.IDClock
	got := make([][]int64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				got[g] = append(got[g], c.Next(time.Now()))
			}
		})
	}
	wg.Wait()
	var all []int64
	for g, ids := range got {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("goroutine %d: id %d after %d", g, ids[i], ids[i-1])
			}
		}
		all = append(all, ids...)
	}
	slices.Sort(all)
	if n := len(slices.Compact(slices.Clone(all))); n != len(all) {
		t.Fatalf("%d distinct ids of %d", n, len(all))
	}
	if last := all[len(all)-1]; c.Last() != last || last >= 1<<53 {
		t.Fatalf("last %d, newest id %d (must match, below 2^53)", c.Last(), last)
	}
}
