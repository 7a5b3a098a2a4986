package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// idCases are the id rules shared by channels and clients; a channel id may
// not contain '|' on top of them.
var idCases = []struct {
	name   string
	id     string
	detail string // empty: valid
}{
	{"ascii", "news", ""},
	{"unicode", "chat/ü 😀", ""},
	{"256 bytes", strings.Repeat("a", 256), ""},
	{"256 bytes multibyte", strings.Repeat("é", 128), ""},
	{"257 bytes", strings.Repeat("a", 257), "longer than 256 bytes"},
	{"257 bytes multibyte", "a" + strings.Repeat("é", 128), "longer than 256 bytes"},
	{"bad utf-8", "a\xffb", "not valid UTF-8"},
	{"truncated utf-8", "a\xc3", "not valid UTF-8"},
	{"nul", "a\x00b", "control character"},
	{"newline", "a\nb", "control character"},
	{"tab", "a\tb", "control character"},
	{"del", "a\x7fb", "control character"},
	{"c1 control", "a\u0085b", "control character"},
}

func (s *suite) testRegisterChannel(t *testing.T) {
	h := s.newHub(t, hub.Config{MessagesPerChannel: 7})
	type want struct {
		err         *hub.Error
		detail      string
		useSessions bool
		maxMessages int
	}
	cases := []struct {
		name        string
		id          string
		useSessions bool
		maxMessages int
		want        want
	}{
		{"defaults", "plain", false, 0, want{maxMessages: 7}},
		{"max_messages", "bounded", false, 3, want{maxMessages: 3}},
		{"max_messages 1", "single", false, 1, want{maxMessages: 1}},
		{"use_sessions", "private", true, 0, want{useSessions: true, maxMessages: 7}},
		{"negative max_messages", "negative", false, -1, want{err: hub.ErrInvalidMaxMessages}},
		{"missing id", "", false, 0, want{err: hub.ErrMissingChannelID}},
		{"pipe", "a|b", false, 0, want{err: hub.ErrInvalidChannelID, detail: "'|'"}},
		{"only a pipe", "|", false, 0, want{err: hub.ErrInvalidChannelID, detail: "'|'"}},
	}
	for _, c := range idCases {
		w := want{maxMessages: 7}
		if c.detail != "" {
			w = want{err: hub.ErrInvalidChannelID, detail: c.detail}
		}
		cases = append(cases, struct {
			name        string
			id          string
			useSessions bool
			maxMessages int
			want        want
		}{"id " + c.name, c.id, false, 0, w})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := h.RegisterChannel(context.Background(), tc.id, tc.useSessions, tc.maxMessages)
			wantErr(t, "registering", err, tc.want.err, tc.want.detail)
			cs, ok := channelStatus(t, h, tc.id)
			if tc.want.err != nil {
				if ok {
					t.Fatalf("refused channel %q is listed in status", tc.id)
				}
				return
			}
			if !ok {
				t.Fatalf("channel %q not in status", tc.id)
			}
			if cs.UseSessions != tc.want.useSessions || cs.MaxMessages != tc.want.maxMessages || cs.MessagesCount != 0 {
				t.Fatalf("status %+v, want use_sessions %v, max_messages %d and no messages",
					cs, tc.want.useSessions, tc.want.maxMessages)
			}
		})
	}
}

func (s *suite) testRegisterChannelExists(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 5)
	err := h.RegisterChannel(context.Background(), "a", true, 9)
	wantErr(t, "registering again", err, hub.ErrChannelExists, "")
	// The refused registration changes nothing.
	if cs, _ := channelStatus(t, h, "a"); cs.UseSessions || cs.MaxMessages != 5 {
		t.Fatalf("status after a refused re-registration: %+v", cs)
	}
	// Ids are exact: other case or padding is another channel.
	mustRegister(t, h, "A", false, 0)
	mustRegister(t, h, "a ", false, 0)
}

func (s *suite) testRegisterClient(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	type tcase struct {
		name   string
		id     string
		err    *hub.Error
		detail string
	}
	cases := []tcase{
		{"missing id", "", hub.ErrMissingClientID, ""},
		// '|' separates channels, not clients.
		{"pipe allowed", "a|b", nil, ""},
	}
	for _, c := range idCases {
		tc := tcase{name: "id " + c.name, id: c.id}
		if c.detail != "" {
			tc.err, tc.detail = hub.ErrInvalidClientID, c.detail
		}
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := h.RegisterClient(context.Background(), tc.id)
			wantErr(t, "registering", err, tc.err, tc.detail)
			if listed := hasClient(t, h, tc.id); listed != (tc.err == nil) {
				t.Fatalf("client %q listed in status: %v, want %v", tc.id, listed, tc.err == nil)
			}
			if tc.err == nil {
				err := h.RegisterClient(context.Background(), tc.id)
				wantErr(t, "registering again", err, hub.ErrClientExists, "")
			}
		})
	}
}

func (s *suite) testPublish(t *testing.T) {
	const limit = 16
	h := s.newHub(t, hub.Config{MaxMessageSize: limit})
	mustRegister(t, h, "a", false, 100)
	cases := []struct {
		name, channel, content string
		err                    *hub.Error
		detail                 string
	}{
		{"plain", "a", "hello", nil, ""},
		{"at the size limit", "a", strings.Repeat("x", limit), nil, ""},
		{"one over the size limit", "a", strings.Repeat("x", limit+1), hub.ErrMessageTooLarge, "16 bytes"},
		// The limit is in bytes: 8 two-byte runes fit, a ninth does not.
		{"multibyte at the limit", "a", strings.Repeat("é", limit/2), nil, ""},
		{"multibyte over the limit", "a", strings.Repeat("é", limit/2) + "x", hub.ErrMessageTooLarge, ""},
		{"hostile content", "a", "<>&\u2028\u2029\"\\", nil, ""},
		{"invalid utf-8", "a", "a\xffb", hub.ErrInvalidContent, ""},
		{"missing content", "a", "", hub.ErrMissingContent, ""},
		{"unknown channel", "nope", "x", hub.ErrNoChannel, ""},
		{"missing channel id", "", "x", hub.ErrMissingChannelID, ""},
		{"invalid channel id", "a\x01", "x", hub.ErrInvalidChannelID, "control character"},
	}
	var want []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			m, err := h.Publish(context.Background(), tc.channel, tc.content)
			after := time.Now()
			wantErr(t, "publishing", err, tc.err, tc.detail)
			if tc.err != nil {
				return
			}
			want = append(want, tc.content)
			if got := m.Content(); got != tc.content {
				t.Errorf("published content %q, want %q", got, tc.content)
			}
			if ts := m.Time(); ts < before.Unix() || ts > after.Unix() {
				t.Errorf("ts %d outside [%d, %d]", ts, before.Unix(), after.Unix())
			}
		})
	}
	// Only the accepted messages were stored, oldest first.
	r := mustRead(t, h, hub.ReadRequest{Channels: "a"})
	got, _ := messagesOf(r, "a")
	if !slices.Equal(contents(got), want) {
		t.Fatalf("stored %q, want %q", contents(got), want)
	}
}

// Ids are unique and strictly increasing across all channels of the hub,
// seeded from the clock and exact in JavaScript.
func (s *suite) testPublishIDs(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	channels := []string{"a", "b", "c"}
	for _, c := range channels {
		mustRegister(t, h, c, false, 100)
	}
	var last int64
	for i := range 60 {
		before := hub.ClockID(time.Now())
		m := mustPublish(t, h, channels[i%len(channels)], "x")
		if m.ID <= last {
			t.Fatalf("publish %d: id %d after %d, want strictly increasing", i, m.ID, last)
		}
		if m.ID < before {
			t.Fatalf("publish %d: id %d below the clock's %d", i, m.ID, before)
		}
		if m.ID >= 1<<53 {
			t.Fatalf("publish %d: id %d not below 2^53", i, m.ID)
		}
		last = m.ID
	}
	// What a read returns carries the same ids.
	r := mustRead(t, h, hub.ReadRequest{Channels: "a|b|c"})
	if r.LastID != last {
		t.Fatalf("last_id %d, want the newest id %d", r.LastID, last)
	}
	for _, c := range r.Channels {
		if len(c.Messages) != 20 {
			t.Fatalf("channel %q has %d messages, want 20", c.ID, len(c.Messages))
		}
	}
}

// A channel keeps its newest max_messages messages, dropping the oldest
// first.
func (s *suite) testRetention(t *testing.T) {
	h := s.newHub(t, hub.Config{MessagesPerChannel: 4})
	cases := []struct {
		name        string
		maxMessages int // 0: the hub's default of 4
		publish     int
	}{
		{"under the limit", 3, 2},
		{"at the limit", 3, 3},
		{"one over", 3, 4},
		{"far over", 3, 20},
		{"max_messages 1", 1, 5},
		{"hub default", 0, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "r-" + tc.name
			mustRegister(t, h, id, false, tc.maxMessages)
			keep := tc.maxMessages
			if keep == 0 {
				keep = 4
			}
			var all []string
			for i := range tc.publish {
				all = append(all, mustPublish(t, h, id, "m"+string(rune('a'+i))).Content())
			}
			want := all[max(0, len(all)-keep):]
			r := mustRead(t, h, hub.ReadRequest{Channels: id})
			got, _ := messagesOf(r, id)
			if !slices.Equal(contents(got), want) {
				t.Fatalf("retained %q, want %q", contents(got), want)
			}
			if cs, _ := channelStatus(t, h, id); cs.MessagesCount != len(want) {
				t.Fatalf("status messages_count %d, want %d", cs.MessagesCount, len(want))
			}
		})
	}
}

func (s *suite) testStatus(t *testing.T) {
	h := s.newHub(t, hub.Config{MessagesPerChannel: 2})
	if st := status(t, h); len(st.Channels) != 0 || len(st.Clients) != 0 || st.Counts.Channels != 0 || st.Counts.Clients != 0 {
		t.Fatalf("status of a new hub: %+v", st)
	}
	mustRegister(t, h, "b", true, 0)
	mustRegister(t, h, "a", false, 5)
	mustClient(t, h, "c2")
	mustClient(t, h, "c1")
	for range 3 {
		mustPublish(t, h, "a", "x")
		mustPublish(t, h, "b", "y")
	}
	st := status(t, h)
	want := []hub.ChannelStatus{
		{ID: "a", MaxMessages: 5, MessagesCount: 3, Clients: []string{}},
		{ID: "b", UseSessions: true, MaxMessages: 2, MessagesCount: 2, Clients: []string{}},
	}
	if len(st.Channels) != len(want) {
		t.Fatalf("status channels %+v, want %+v", st.Channels, want)
	}
	for i, c := range st.Channels {
		w := want[i]
		if c.ID != w.ID || c.UseSessions != w.UseSessions || c.MaxMessages != w.MaxMessages ||
			c.MessagesCount != w.MessagesCount || len(c.Clients) != 0 {
			t.Fatalf("status channel %d: %+v, want %+v (sorted by id)", i, c, w)
		}
	}
	if !slices.Equal(st.Clients, []string{"c1", "c2"}) {
		t.Fatalf("status clients %q, want [c1 c2] (sorted)", st.Clients)
	}
	wantMessagesCount(t, st.Counts, 5)
	if st.Counts.Channels != 2 || st.Counts.Clients != 2 {
		t.Fatalf("status counts %+v, want 2 channels and 2 clients", st.Counts)
	}
	counts, err := h.Counts(context.Background())
	if err != nil || counts != st.Counts {
		t.Fatalf("counts %+v, %v; want the status's %+v", counts, err, st.Counts)
	}
}

// wantMessagesCount checks a count of retained messages, where the store
// keeps one (see hub.Counts).
func wantMessagesCount(t *testing.T, c hub.Counts, want int) {
	t.Helper()
	if c.Messages != want && c.Messages != -1 {
		t.Fatalf("messages count %d, want %d", c.Messages, want)
	}
}

// A status lists at most StatusListLimit channels and clients, sorted by
// id, however many the hub holds, and counts them all.
func (s *suite) testStatusCapped(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	const over = 5
	for i := range hub.StatusListLimit + over {
		mustRegister(t, h, fmt.Sprintf("c%05d", i), false, 1)
		mustClient(t, h, fmt.Sprintf("u%05d", i))
	}
	st := status(t, h)
	if len(st.Channels) != hub.StatusListLimit || len(st.Clients) != hub.StatusListLimit {
		t.Fatalf("status lists %d channels and %d clients, want %d of each", len(st.Channels), len(st.Clients), hub.StatusListLimit)
	}
	if st.Counts.Channels != hub.StatusListLimit+over || st.Counts.Clients != hub.StatusListLimit+over {
		t.Fatalf("status counts %+v, want %d of each", st.Counts, hub.StatusListLimit+over)
	}
	if !slices.IsSortedFunc(st.Channels, func(a, b hub.ChannelStatus) int { return strings.Compare(a.ID, b.ID) }) || !slices.IsSorted(st.Clients) {
		t.Fatal("status lists are not sorted by id")
	}
	counts, err := h.Counts(context.Background())
	if err != nil || counts.Channels != st.Counts.Channels || counts.Clients != st.Counts.Clients {
		t.Fatalf("counts %+v, %v; want %+v", counts, err, st.Counts)
	}
}

// A status lists at most StatusReadersPerChannel readers of a channel, and
// StatusReadersLimit over all its channels, in the order it lists the
// channels; every channel counts all its readers.
func (s *suite) testStatusReadersCapped(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	const readers = hub.StatusReadersPerChannel + 50
	// Enough channels that their readers, at the per-channel cap, pass the
	// whole status's limit by two channels' worth.
	channels := make([]string, hub.StatusReadersLimit/hub.StatusReadersPerChannel+2)
	for i := range channels {
		channels[i] = fmt.Sprintf("c%02d", i)
		mustRegister(t, h, channels[i], true, 1)
		mustPublish(t, h, channels[i], "x")
	}
	for i := range readers {
		client := fmt.Sprintf("u%03d", i)
		mustClient(t, h, client)
		mustRead(t, h, hub.ReadRequest{Channels: strings.Join(channels, "|"), ClientID: client, HasClientID: true})
	}
	st := status(t, h)
	if len(st.Channels) != len(channels) {
		t.Fatalf("status lists %d channels, want %d", len(st.Channels), len(channels))
	}
	listed := 0
	for i, c := range st.Channels {
		want := max(0, min(hub.StatusReadersPerChannel, hub.StatusReadersLimit-i*hub.StatusReadersPerChannel))
		if len(c.Clients) != want || c.ClientsCount != readers {
			t.Errorf("channel %s lists %d readers and counts %d, want %d listed of %d", c.ID, len(c.Clients), c.ClientsCount, want, readers)
		}
		if !slices.IsSorted(c.Clients) {
			t.Errorf("channel %s's readers are not sorted", c.ID)
		}
		listed += len(c.Clients)
	}
	if listed != hub.StatusReadersLimit {
		t.Errorf("status lists %d readers in all, want %d", listed, hub.StatusReadersLimit)
	}
}

// A store that works answers the health probe, and the probe changes
// nothing a status would show.
func (s *suite) testPing(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 0)
	before := status(t, h)
	for range 3 {
		if err := h.Ping(context.Background()); err != nil {
			t.Fatalf("ping of a working store: %v", err)
		}
	}
	if after := status(t, h); after.Counts != before.Counts || len(after.Channels) != 1 {
		t.Fatalf("status after pings %+v, before %+v", after, before)
	}
}
