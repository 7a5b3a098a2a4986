package hub

import (
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxIDLength is the longest channel or client id, in bytes.
const MaxIDLength = 256

// ValidateChannelID checks a channel id: 1 to MaxIDLength bytes of valid
// UTF-8, no control characters and no '|' (it separates channels in a read).
func ValidateChannelID(id string) error {
	if strings.IndexByte(id, '|') >= 0 {
		return ErrInvalidChannelID.With("contains '|'")
	}
	if msg := checkID(id); msg != "" {
		return ErrInvalidChannelID.With(msg)
	}
	return nil
}

// ValidateClientID checks a client id: 1 to MaxIDLength bytes of valid UTF-8
// and no control characters.
func ValidateClientID(id string) error {
	if msg := checkID(id); msg != "" {
		return ErrInvalidClientID.With(msg)
	}
	return nil
}

// ValidateIdempotencyKey checks a publish's idempotency key by the rules of
// client ids: 1 to MaxIDLength bytes of valid UTF-8 and no control
// characters.
func ValidateIdempotencyKey(key string) error {
	if msg := checkID(key); msg != "" {
		return ErrInvalidIdempotencyKey.With(msg)
	}
	return nil
}

func checkID(id string) string {
	switch {
	case id == "":
		return "empty"
	case len(id) > MaxIDLength:
		return "longer than 256 bytes"
	case !utf8.ValidString(id):
		return "not valid UTF-8"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "contains a control character"
	}
	return ""
}

// IDTick is the unit of message ids: ids count 10-microsecond ticks since the
// Unix epoch, as the original server's did, so that ids keep increasing across
// restarts. At this resolution they stay below 2^53 until the year 4824.
const IDTick = 10 * time.Microsecond

// ClockID is the id the clock gives for t.
func ClockID(t time.Time) int64 { return t.UnixMicro() / int64(IDTick/time.Microsecond) }

// IDClock hands out message ids that are unique and strictly increasing: the
// clock's tick, or one more than the last id when the clock has not moved on
// (or went back). The zero value is ready to use.
type IDClock struct {
	last atomic.Int64
}

// Next returns a new id for a message published at now.
func (c *IDClock) Next(now time.Time) int64 {
	tick := ClockID(now)
	for {
		last := c.last.Load()
		id := max(tick, last+1)
		if c.last.CompareAndSwap(last, id) {
			return id
		}
	}
}

// Last returns the newest id handed out, 0 if none.
func (c *IDClock) Last() int64 { return c.last.Load() }
