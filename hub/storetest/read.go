package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

// A read returns every retained message newer than since, oldest first, and
// the newest id of the hub, so that since=last_id continues without a gap or
// a repeat.
func (s *suite) testReadSince(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
	mustRegister(t, h, "a", false, 100)
	mustRegister(t, h, "other", false, 100)
	m1 := mustPublish(t, h, "a", "one")
	m2 := mustPublish(t, h, "a", "two")
	mOther := mustPublish(t, h, "other", "elsewhere")
	m3 := mustPublish(t, h, "a", "three")

	cases := []struct {
		name  string
		since int64
		want  []int64
	}{
		{"since 0", 0, []int64{m1.ID, m2.ID, m3.ID}},
		{"negative since counts as 0", -5, []int64{m1.ID, m2.ID, m3.ID}},
		{"below the first id", m1.ID - 1, []int64{m1.ID, m2.ID, m3.ID}},
		{"since the first", m1.ID, []int64{m2.ID, m3.ID}},
		// An id of another channel is a valid cursor: ids are global.
		{"since another channel's id", mOther.ID, []int64{m3.ID}},
		{"between ids", m2.ID + (mOther.ID-m2.ID)/2, []int64{m3.ID}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRead(t, h, hub.ReadRequest{Channels: "a", Since: tc.since})
			got, _ := messagesOf(r, "a")
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("ids %v, want %v", ids(got), tc.want)
			}
			if r.LastID != m3.ID {
				t.Fatalf("last_id %d, want %d", r.LastID, m3.ID)
			}
			if wantSince := max(tc.since, 0); r.Since != wantSince {
				t.Fatalf("since %d, want %d", r.Since, wantSince)
			}
		})
	}

	// Continuing from last_id: nothing is repeated, and the next message is
	// the whole answer.
	p := startRead(context.Background(), h, hub.ReadRequest{Channels: "a", Since: m3.ID}, nil)
	waitHeld(t, h, 1)
	m4 := mustPublish(t, h, "a", "four")
	r, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := messagesOf(r, "a"); !slices.Equal(ids(got), []int64{m4.ID}) || r.LastID != m4.ID {
		t.Fatalf("read since last_id: ids %v last_id %d, want [%d] and %d", ids(got), r.LastID, m4.ID, m4.ID)
	}
}

// A since beyond the newest id is clamped to it: the read waits for the next
// message and delivers it, rather than skipping every message up to since.
func (s *suite) testReadSinceClamped(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
	mustRegister(t, h, "a", false, 100)
	m1 := mustPublish(t, h, "a", "one")
	future := m1.ID + 1_000_000_000

	p := startRead(context.Background(), h, hub.ReadRequest{Channels: "a", Since: future}, nil)
	waitHeld(t, h, 1)
	m2 := mustPublish(t, h, "a", "two")
	r, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := messagesOf(r, "a"); !slices.Equal(ids(got), []int64{m2.ID}) {
		t.Fatalf("held read with since beyond last_id: ids %v, want [%d]", ids(got), m2.ID)
	}
	if r.Since != m1.ID || r.LastID != m2.ID {
		t.Fatalf("since %d last_id %d, want since clamped to %d and last_id %d", r.Since, r.LastID, m1.ID, m2.ID)
	}

	// A read answered empty reports the clamped since too.
	stopped := make(chan struct{})
	close(stopped)
	r, err = h.Read(context.Background(), hub.ReadRequest{Channels: "a", Since: future}, stopped)
	if err != nil {
		t.Fatal(err)
	}
	if r.Since != m2.ID || r.LastID != m2.ID || r.HasMessages() {
		t.Fatalf("stopped read: since %d last_id %d messages %v, want since and last_id %d, no messages",
			r.Since, r.LastID, r.HasMessages(), m2.ID)
	}
}

// The channel list: one entry per readable channel in request order, empty
// arrays for channels with nothing new, unknown channels skipped, duplicates
// read once.
func (s *suite) testReadChannelList(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
	for _, c := range []string{"a", "b", "c"} {
		mustRegister(t, h, c, false, 100)
	}
	ma := mustPublish(t, h, "a", "for a")
	mc := mustPublish(t, h, "c", "for c")

	cases := []struct {
		name     string
		channels string
		since    int64
		want     []string // channel ids in the reply, in order
		counts   []int    // messages per channel
		err      *hub.Error
		detail   string
	}{
		{"one channel", "a", 0, []string{"a"}, []int{1}, nil, ""},
		{"request order", "c|b|a", 0, []string{"c", "b", "a"}, []int{1, 0, 1}, nil, ""},
		{"empty arrays", "b|c", ma.ID, []string{"b", "c"}, []int{0, 1}, nil, ""},
		{"unknown skipped", "nope|a|gone", 0, []string{"a"}, []int{1}, nil, ""},
		{"duplicates once", "a|a|b|a", 0, []string{"a", "b"}, []int{1, 0}, nil, ""},
		{"empty segments skipped", "|a||c|", 0, []string{"a", "c"}, []int{1, 1}, nil, ""},
		{"only unknown", "nope|gone", 0, nil, nil, hub.ErrNoValidChannels, ""},
		{"no channels", "", 0, nil, nil, hub.ErrNoChannels, ""},
		{"only separators", "||", 0, nil, nil, hub.ErrNoChannels, ""},
		{"invalid id", "a|b\x01", 0, nil, nil, hub.ErrInvalidChannelID, "control character"},
		{"too long id", "a|" + strings.Repeat("x", 257), 0, nil, nil, hub.ErrInvalidChannelID, "longer than 256 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := read(h, hub.ReadRequest{Channels: tc.channels, Since: tc.since}, patience)
			wantErr(t, "reading", err, tc.err, tc.detail)
			if tc.err != nil {
				return
			}
			if !slices.Equal(channelIDs(r), tc.want) {
				t.Fatalf("reply channels %q, want %q", channelIDs(r), tc.want)
			}
			for i, c := range r.Channels {
				if len(c.Messages) != tc.counts[i] {
					t.Fatalf("channel %q: %d messages, want %d", c.ID, len(c.Messages), tc.counts[i])
				}
			}
			if r.LastID != mc.ID {
				t.Fatalf("last_id %d, want %d", r.LastID, mc.ID)
			}
		})
	}

	// A read held on several channels is answered with the channel that got
	// a message and empty arrays for the others.
	p := startRead(context.Background(), h, hub.ReadRequest{Channels: "a|b|c", Since: mc.ID}, nil)
	waitHeld(t, h, 1)
	mb := mustPublish(t, h, "b", "for b")
	r, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(channelIDs(r), []string{"a", "b", "c"}) {
		t.Fatalf("woken read: channels %q, want [a b c]", channelIDs(r))
	}
	for _, c := range r.Channels {
		want := []int64{}
		if c.ID == "b" {
			want = []int64{mb.ID}
		}
		if !slices.Equal(ids(c.Messages), want) {
			t.Fatalf("woken read: channel %q ids %v, want %v", c.ID, ids(c.Messages), want)
		}
	}
}

// max_channels_per_read: at the limit is fine, one over is refused, and
// duplicates count once.
func (s *suite) testReadTooManyChannels(t *testing.T) {
	h := s.newHub(t, hub.Config{MaxChannelsPerRead: 3})
	for _, c := range []string{"a", "b", "c", "d"} {
		mustRegister(t, h, c, false, 100)
		mustPublish(t, h, c, "x")
	}
	cases := []struct {
		name     string
		channels string
		err      *hub.Error
	}{
		{"at the limit", "a|b|c", nil},
		{"one over", "a|b|c|d", hub.ErrTooManyChannels},
		// Unknown channels count: the limit bounds the work of parsing
		// and looking up, whatever exists.
		{"one over with unknown", "a|b|c|nope", hub.ErrTooManyChannels},
		{"duplicates count once", "a|b|c|a|b|c|a", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(h, hub.ReadRequest{Channels: tc.channels}, patience)
			detail := ""
			if tc.err != nil {
				detail = "at most 3"
			}
			wantErr(t, "reading", err, tc.err, detail)
		})
	}
}

// Session channels are for registered clients: skipped for anonymous reads,
// -3 for unknown clients, -1 for an empty client id.
func (s *suite) testReadSessions(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "open", false, 100)
	mustRegister(t, h, "private", true, 100)
	mustPublish(t, h, "open", "o")
	mustPublish(t, h, "private", "p")
	mustClient(t, h, "alice")

	cases := []struct {
		name     string
		channels string
		client   *string
		want     []string
		err      *hub.Error
		detail   string
	}{
		{"anonymous skips session channels", "private|open", nil, []string{"open"}, nil, ""},
		{"anonymous on only session channels", "private", nil, nil, hub.ErrNoValidChannels, ""},
		{"registered client reads both", "private|open", ptr("alice"), []string{"private", "open"}, nil, ""},
		{"unregistered client", "open", ptr("bob"), nil, hub.ErrUnregisteredClient, ""},
		{"unregistered client on session channel", "private", ptr("bob"), nil, hub.ErrUnregisteredClient, ""},
		{"empty client id", "open", ptr(""), nil, hub.ErrEmptyReadClientID, ""},
		{"invalid client id", "open", ptr("al\x00ice"), nil, hub.ErrInvalidClientID, "control character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := hub.ReadRequest{Channels: tc.channels}
			if tc.client != nil {
				req.ClientID, req.HasClientID = *tc.client, true
			}
			r, err := read(h, req, patience)
			wantErr(t, "reading", err, tc.err, tc.detail)
			if tc.err == nil && !slices.Equal(channelIDs(r), tc.want) {
				t.Fatalf("reply channels %q, want %q", channelIDs(r), tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A registered client that reads a channel is listed among its clients.
func (s *suite) testReadRecordsClient(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 100)
	mustRegister(t, h, "b", true, 100)
	mustRegister(t, h, "unread", false, 100)
	mustPublish(t, h, "a", "x")
	mustClient(t, h, "alice")
	mustClient(t, h, "bob")

	mustRead(t, h, hub.ReadRequest{Channels: "a|b", ClientID: "alice", HasClientID: true})
	mustRead(t, h, hub.ReadRequest{Channels: "a", ClientID: "bob", HasClientID: true})
	mustRead(t, h, hub.ReadRequest{Channels: "a"}) // anonymous: recorded nowhere
	// Reading twice records once.
	mustRead(t, h, hub.ReadRequest{Channels: "a", ClientID: "bob", HasClientID: true})

	want := map[string][]string{"a": {"alice", "bob"}, "b": {"alice"}, "unread": {}}
	for id, clients := range want {
		cs, ok := channelStatus(t, h, id)
		if !ok {
			t.Fatalf("channel %q missing from status", id)
		}
		got := slices.Sorted(slices.Values(cs.Clients))
		if !slices.Equal(got, clients) {
			t.Errorf("channel %q clients %q, want %q", id, got, clients)
		}
	}
}
