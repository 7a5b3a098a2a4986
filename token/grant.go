package token

import (
	"fmt"
	"strings"
	"time"
)

// Grant is what a token allows: its comet claim, and until when. A Grant
// that Verify returns may be shared with other requests through the cache:
// it is not to be changed.
type Grant struct {
	// Subscribe lists the channels the bearer may read; "*" stands for
	// every channel. Default: none.
	Subscribe []string `json:"subscribe,omitempty"`

	// Publish lists the channels the bearer may publish to; "*" stands
	// for every channel. Default: none.
	Publish []string `json:"publish,omitempty"`

	// Manage allows registering and deleting channels and registering
	// clients. Default: false.
	Manage bool `json:"manage,omitempty"`

	// Status allows the status call. Default: false.
	Status bool `json:"status,omitempty"`

	// Until is when the token stops being taken: exp plus the verifier's
	// leeway. A read held, or an event stream open, with the token ends
	// then. It is not a claim (Sign ignores it). Default: zero.
	Until time.Time `json:"-"`
}

// Allows returns nil when g allows op on channels, and otherwise the
// *hub.Error that says why not. op is a member of the comet claim:
// subscribe (channels is the a|b list of a read, every one of which must
// be covered), publish (channels is the one channel), manage or status
// (channels is ignored).
func (g *Grant) Allows(op, channels string) error {
	switch op {
	case "subscribe":
		for rest := channels; ; {
			ch, more, found := strings.Cut(rest, "|")
			if !covers(g.Subscribe, ch) {
				return ErrChannelUncovered.With("subscribe " + quoteID(ch))
			}
			if !found {
				return nil
			}
			rest = more
		}
	case "publish":
		if !covers(g.Publish, channels) {
			return ErrChannelUncovered.With("publish " + quoteID(channels))
		}
	case "manage":
		if !g.Manage {
			return ErrOpUncovered.With(`manage needs "manage": true`)
		}
	case "status":
		if !g.Status {
			return ErrOpUncovered.With(`status needs "status": true`)
		}
	default:
		return ErrOpUncovered.With(op)
	}
	return nil
}

// covers reports whether list names channel, or holds "*".
func covers(list []string, channel string) bool {
	for _, c := range list {
		if c == channel || c == "*" {
			return true
		}
	}
	return false
}

// quoteID quotes a channel id for an error message, cut to the longest
// valid id: it is the client's own input, but one refused before the hub
// has checked it.
func quoteID(id string) string {
	const maxShown = 256
	if len(id) > maxShown {
		id = strings.ToValidUTF8(id[:maxShown], "") + "..."
	}
	return fmt.Sprintf("%q", id)
}
