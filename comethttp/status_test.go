package comethttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
	"github.com/simple-comet/caddy-comet/hub"
)

// maxStatusReply bounds a status reply's body whatever the hub holds, as
// docs/api.md states it: at most StatusListLimit channels, as many clients
// and StatusReadersLimit readers, each id at most hub.MaxIDLength bytes of
// characters JSON escapes to six bytes (<, > and &), each number at most 20
// digits, in the longest JSON-P callback.
const maxStatusReply = (2*hub.StatusListLimit+hub.StatusReadersLimit)*(6*hub.MaxIDLength+len(`"",`)) +
	hub.StatusListLimit*(len(`{"channel_id":,"use_sessions":false,"max_messages":,"messages_count":,"clients":[],"clients_count":},`)+3*20) +
	len(`{"status":{"channels":[],"clients":[],"held_connections_count":},"channels_count":,"clients_count":,"messages_count":,"return_code":1,"error_message":""}`) + 4*20 +
	wire.MaxCallbackLength + len(`();`)

// A status at the worst case of its caps: more channels and clients than
// it lists, every id of the longest length and of characters that JSON
// escapes to six bytes, and every channel with more readers than it lists.
// The reply stays within maxStatusReply, lists within the caps and counts
// everything.
func TestStatusReplyBoundedAtTheCaps(t *testing.T) {
	h := testHandler(t, hub.Config{MaxRetainedMessages: 1, MessagesPerChannel: 1})
	ctx := context.Background()
	longID := func(prefix string, i int) string {
		id := fmt.Sprintf("%s%05d", prefix, i)
		return id + strings.Repeat("<", hub.MaxIDLength-len(id))
	}
	const channels, clients = hub.StatusListLimit + 1, hub.StatusListLimit + 1
	var all []string
	for i := range channels {
		id := longID("c", i)
		all = append(all, id)
		if err := h.hub.RegisterChannel(ctx, id, true, 1); err != nil {
			t.Fatal(err)
		}
	}
	// Every client reads every channel: each channel has more readers than
	// a status lists for one, and all of them more than it lists in all.
	for i := range clients {
		id := longID("u", i)
		if err := h.hub.RegisterClient(ctx, id); err != nil {
			t.Fatal(err)
		}
		if i > hub.StatusReadersPerChannel {
			continue
		}
		for from := 0; from < len(all); from += hub.DefaultMaxChannelsPerRead {
			batch := all[from:min(from+hub.DefaultMaxChannelsPerRead, len(all))]
			if _, err := h.hub.Read(ctx, hub.ReadRequest{Channels: strings.Join(batch, "|"), ClientID: id, HasClientID: true, Hold: -1}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}

	rec, _ := serve(t, h, httptest.NewRequest(http.MethodGet, "/status.jsonp?cb=_JSONP_"+strings.Repeat("x", wire.MaxCallbackLength-len("_JSONP_")), nil))
	body := rec.Body.String()
	t.Logf("status reply at the caps: %d bytes, bound %d", len(body), maxStatusReply)
	if len(body) > maxStatusReply {
		t.Fatalf("status reply of %d bytes, over the bound of %d", len(body), maxStatusReply)
	}
	rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/status.json", nil))
	var rep struct {
		Status struct {
			Channels []hub.ChannelStatus `json:"channels"`
			Clients  []string            `json:"clients"`
		} `json:"status"`
		Channels int `json:"channels_count"`
		Clients  int `json:"clients_count"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	st := rep.Status
	if len(st.Channels) != hub.StatusListLimit || len(st.Clients) != hub.StatusListLimit {
		t.Fatalf("status lists %d channels and %d clients, want %d of each", len(st.Channels), len(st.Clients), hub.StatusListLimit)
	}
	readers := 0
	for _, c := range st.Channels {
		readers += len(c.Clients)
		if c.ClientsCount != hub.StatusReadersPerChannel+1 {
			t.Fatalf("channel %.8s... counts %d readers, want %d", c.ID, c.ClientsCount, hub.StatusReadersPerChannel+1)
		}
	}
	if readers != hub.StatusReadersLimit {
		t.Fatalf("status lists %d readers in all, want %d", readers, hub.StatusReadersLimit)
	}
	if rep.Channels != channels || rep.Clients != clients {
		t.Fatalf("status counts %d channels and %d clients, want %d and %d", rep.Channels, rep.Clients, channels, clients)
	}
}
