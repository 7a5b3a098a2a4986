package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// max_held_per_ip counts held reads by Caddy's client IP, so behind a
// trusted proxy each forwarded client has its own allowance: one client
// cannot take every slot, and other clients keep theirs.
func TestMaxHeldPerIP(t *testing.T) {
	startCaddyWith(t, `	servers {
		trusted_proxies static 127.0.0.1/32
		client_ip_headers X-Forwarded-For
	}
`, `
http://127.0.0.1:9080 {
	bind 127.0.0.1
	comet {
		hub per_ip
		enable_status
		max_held_per_ip 2
	}
}
`)
	registerChannel(t, base, "ip")
	id := publish(t, base, "ip", "latest")
	readAs := func(ip string) response { t.Helper(); return readAs(t, base, "ip", id, ip) }

	var wg sync.WaitGroup
	for _, ip := range []string{"203.0.113.1", "203.0.113.1", "203.0.113.2"} {
		wg.Go(func() {
			if r := readAs(ip); r.status != 200 || r.json(t).ReturnCode != 1 {
				t.Errorf("held read as %s: %d %s", ip, r.status, r.body)
			}
		})
	}
	heldReads(t, base, 3)
	mustCode(t, readAs("203.0.113.1"), 503, -5, "Too many held connections from one address: at most 2")
	heldReads(t, base, 3)
	publish(t, base, "ip", "release")
	wg.Wait()
}

// max_held_per_ip counts an IPv6 client by its prefix, ipv6_prefix_per_ip
// bits of it (/64 unless set): one subscriber's addresses share one
// allowance, however many of them it uses, while a client in another prefix
// keeps its own. IPv4 addresses count alone, spelled as IPv4-mapped IPv6
// too.
func TestMaxHeldPerIPv6Prefix(t *testing.T) {
	const per56 = "http://127.0.0.1:9081"
	startCaddyWith(t, `	servers {
		trusted_proxies static 127.0.0.1/8 ::1
		client_ip_headers X-Forwarded-For
	}
`, `
http://127.0.0.1:9080 {
	bind 127.0.0.1
	comet {
		hub per_64
		enable_status
		max_held_per_ip 2
	}
}

http://127.0.0.1:9081 {
	bind 127.0.0.1
	comet {
		hub per_56
		enable_status
		max_held_per_ip 2
		ipv6_prefix_per_ip 56
	}
}
`)
	const tooMany = "Too many held connections from one address: at most 2"
	var wg sync.WaitGroup
	for _, site := range []struct {
		base          string
		held, refused []string // the held reads fill the allowances
		alsoServed    string   // held after the refusals: another prefix
	}{
		{
			base: base,
			held: []string{
				"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", // one /64
				"2001:db8:1:3::1",                           // the next /64
				"203.0.113.1", "203.0.113.1", "203.0.113.2", // IPv4: each address alone
			},
			refused:    []string{"2001:db8:1:2::3", "2001:db8:1:2:abcd::", "203.0.113.1", "::ffff:203.0.113.1"},
			alsoServed: "2001:db8:1:3::2",
		},
		{
			base:       per56,
			held:       []string{"2001:db8:1:200::1", "2001:db8:1:2ff::1"}, // two /64s of one /56
			refused:    []string{"2001:db8:1:2aa::1"},
			alsoServed: "2001:db8:1:300::1", // the next /56
		},
	} {
		registerChannel(t, site.base, "ip")
		id := publish(t, site.base, "ip", "latest")
		hold := func(ip string) {
			wg.Go(func() {
				if r := readAs(t, site.base, "ip", id, ip); r.status != 200 || r.json(t).ReturnCode != 1 {
					t.Errorf("%s: held read as %s: %d %s", site.base, ip, r.status, r.body)
				}
			})
		}
		for _, ip := range site.held {
			hold(ip)
		}
		heldReads(t, site.base, len(site.held))
		for _, ip := range site.refused {
			mustCode(t, readAs(t, site.base, "ip", id, ip), 503, -5, tooMany)
		}
		hold(site.alsoServed)
		heldReads(t, site.base, len(site.held)+1)
	}
	publish(t, base, "ip", "release")
	publish(t, per56, "ip", "release")
	wg.Wait()
}

// readAs reads channel on base since since as the client at ip, as a
// trusted proxy forwards it (X-Forwarded-For).
func readAs(t *testing.T, base, channel string, since int64, ip string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/channels/"+channel+".json?"+url.Values{"since": {strconv.FormatInt(since, 10)}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", ip)
	res, err := longPoll.Do(req)
	if err != nil {
		t.Errorf("read as %s: %v", ip, err)
		return response{}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: string(body)}
}

// The hub's size limits over HTTP: refused at the limit with -1 and a
// message naming it, in the API's reply shape, and nothing else lost.
func TestHubSizeLimits(t *testing.T) {
	startCaddy(t, `
http://127.0.0.1:9080 {
	bind 127.0.0.1
	comet {
		hub sizes
		max_channels 2
		max_clients 1
		max_retained_messages 5
		messages_per_channel 5
	}
}
`)
	registerChannel(t, base, "one", "max_messages", "5")
	mustCode(t, post(t, base+"/channels.json", url.Values{"channel_id": {"over"}, "max_messages": {"6"}}), 200, -1,
		"Invalid max messages value: at most 5")
	mustCode(t, post(t, base+"/channels.json", url.Values{"channel_id": {"huge"}, "max_messages": {"9223372036854775807"}}), 200, -1,
		"Invalid max messages value: at most 5")
	registerChannel(t, base, "two")
	mustCode(t, post(t, base+"/channels.json", url.Values{"channel_id": {"three"}}), 200, -1, "Too many channels: at most 2")
	registerClient(t, base, "alice")
	mustCode(t, post(t, base+"/clients.json", url.Values{"client_id": {"bob"}}), 200, -1, "Too many clients: at most 1")
	id := publish(t, base, "one", "kept")
	if rep := mustCode(t, read(t, base, "one|two", 0, "client_id", "alice"), 200, 1, ""); len(rep.Messages["one"]) != 1 || rep.LastID != id {
		t.Fatalf("after refusals: %+v", rep)
	}
}

// Over HTTP, a read reply never exceeds max_reply_size, in either format
// and with the longest callback, however much its channels hold: readers
// page through with since=last_id and get every message exactly once.
func TestReadRepliesArePaged(t *testing.T) {
	const maxReply = 8192
	startCaddy(t, `
http://127.0.0.1:9080 {
	bind 127.0.0.1
	comet {
		hub paged
		max_message_size 100
		max_channels_per_read 4
		max_reply_size 8KiB
		quote_json
	}
}
`)
	channels := []string{"page-a", "page-b", "page-c"}
	published := map[string][]int64{}
	for _, c := range channels {
		registerChannel(t, base, c, "max_messages", "200")
	}
	for i := range 240 {
		c := channels[i%len(channels)]
		// Content that escaping makes six times longer, of every length.
		published[c] = append(published[c], publish(t, base, c, strings.Repeat("<", 1+i%100)))
	}
	callback := "_JSONP_" + strings.Repeat("c", 121)
	got := map[string][]int64{}
	since, pages := int64(0), 0
	for {
		format := []string{"json", "jsonp"}[pages%2]
		target := fmt.Sprintf("%s/channels/%s.%s?since=%d&cb=%s", base, url.PathEscape(strings.Join(channels, "|")), format, since, callback)
		r := get(t, target)
		if len(r.body) > maxReply {
			t.Fatalf("page %d (%s): %d bytes, over max_reply_size %d", pages, format, len(r.body), maxReply)
		}
		if format == "jsonp" {
			r.body = strings.TrimSuffix(strings.TrimPrefix(r.body, callback+"("), ");")
		}
		rep := r.json(t)
		if rep.ReturnCode != 1 {
			t.Fatalf("page %d: %s", pages, r.body)
		}
		n := 0
		for c, ms := range rep.Messages {
			for _, m := range ms {
				got[c] = append(got[c], m.ID)
				n++
			}
		}
		if n == 0 {
			break
		}
		pages++
		since = rep.LastID
	}
	if pages < 10 {
		t.Fatalf("%d pages: the limit did not page", pages)
	}
	for _, c := range channels {
		if !slices.Equal(got[c], published[c]) {
			t.Fatalf("channel %s: got %d messages %v, want %d (each once, in order)", c, len(got[c]), got[c], len(published[c]))
		}
	}
}
