package hub

import "sync"

// ReplyMemo keeps what the reads that took one store read's result make of
// it, so that they make it once: the HTTP layer keeps there each encoding of
// the reply (one per format and callback name), and the readers that one
// publish woke write the same bytes instead of encoding the same reply
// each (docs/design.md, "Shared reads"). What it keeps is never changed
// once kept. It is safe for concurrent use.
type ReplyMemo struct {
	mu      sync.Mutex
	n       int
	keys    [maxMemoKeys]MemoKey
	entries [maxMemoKeys][]byte
}

// MemoKey names an encoding kept in a ReplyMemo: a kind the caller defines
// (a format) and a name (a JSON-P callback).
type MemoKey struct {
	Kind uint8
	Name string
}

// maxMemoKeys bounds the encodings a ReplyMemo keeps, and so the work of
// looking one up: readers that ask for more (callback names of their own)
// make theirs and share nothing, which costs them what it did before there
// was a memo, and the other readers nothing.
const maxMemoKeys = 4

// Get returns what m keeps under key, making it with make and keeping it
// the first time. Readers of the same key wait for the first to make it
// rather than each making their own. When m already keeps maxMemoKeys
// other keys, Get returns what make made without keeping it. The bytes
// returned are shared: callers must not change them.
func (m *ReplyMemo) Get(key MemoKey, make func() []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.n {
		if m.keys[i] == key {
			return m.entries[i]
		}
	}
	b := make()
	if m.n < maxMemoKeys {
		m.keys[m.n], m.entries[m.n] = key, b
		m.n++
	}
	return b
}
