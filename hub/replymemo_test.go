package hub

import (
	"context"
	"sync"
	"testing"
)

// A memo makes each key's value once, however many readers ask at once,
// and beyond maxMemoKeys keys makes values without keeping them.
func TestReplyMemo(t *testing.T) {
	var m ReplyMemo
	var made sync.Map // key -> times made
	get := func(key MemoKey) []byte {
		return m.Get(key, func() []byte {
			n, _ := made.LoadOrStore(key, new(int))
			*n.(*int)++
			return []byte(key.Name)
		})
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { get(MemoKey{Kind: 1, Name: "a"}) })
	}
	wg.Wait()
	if n, _ := made.Load(MemoKey{Kind: 1, Name: "a"}); *n.(*int) != 1 {
		t.Fatalf("50 readers of one key made it %d times, want 1", *n.(*int))
	}
	first, again := get(MemoKey{Kind: 1, Name: "a"}), get(MemoKey{Kind: 1, Name: "a"})
	if &first[0] != &again[0] {
		t.Fatal("two readers of one key got different copies")
	}
	if got := string(get(MemoKey{Kind: 2, Name: "a"})); got != "a" {
		t.Fatalf("another kind, same name: %q", got)
	}
	for _, name := range []string{"b", "c", "d", "e"} {
		if got := string(get(MemoKey{Kind: 1, Name: name})); got != name {
			t.Fatalf("key %q got %q", name, got)
		}
	}
	// Kept: a, (2,a), b, c. Not kept: d, e, made again when asked again.
	get(MemoKey{Kind: 1, Name: "e"})
	for name, want := range map[string]int{"a": 1, "c": 1, "e": 2} {
		if n, _ := made.Load(MemoKey{Kind: 1, Name: name}); *n.(*int) != want {
			t.Errorf("key %q made %d times, want %d", name, *n.(*int), want)
		}
	}
}

// The reads one publish released share one store read and one memo, on an
// inline store too, where each woken read looks only after the previous
// one's store read has ended; and the question's entry goes with its last
// read.
func TestWokenReadsShareOneMemo(t *testing.T) {
	h := NewMemory(Config{})
	defer h.Close()
	ctx := context.Background()
	if err := h.RegisterChannel(ctx, "c", false, 0); err != nil {
		t.Fatal(err)
	}
	m, err := h.Publish(ctx, "c", "old")
	if err != nil {
		t.Fatal(err)
	}
	const readers = 50
	replies := make(chan Reply, readers)
	for range readers {
		go func() {
			r, err := h.Read(ctx, ReadRequest{Channels: "c", Since: m.ID}, nil)
			if err != nil {
				t.Error(err)
			}
			replies <- r
		}()
	}
	waitHeld(t, h, readers)
	if _, err := h.Publish(ctx, "c", "new"); err != nil {
		t.Fatal(err)
	}
	var memo *ReplyMemo
	for range readers {
		r := <-replies
		if r.Reason != ReleasedMessages || r.Memo == nil {
			t.Fatalf("released by %s, memo %p: want messages and a memo", r.Reason, r.Memo)
		}
		if memo == nil {
			memo = r.Memo
		} else if r.Memo != memo {
			t.Fatal("two reads released by one publish got different memos")
		}
	}
	entries := 0
	h.sharedReads.byKey.each(func(m map[questionKey]*question) { entries += len(m) })
	if entries != 0 {
		t.Fatalf("%d questions kept after their reads ended, want none", entries)
	}
}
