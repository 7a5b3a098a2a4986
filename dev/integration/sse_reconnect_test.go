package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// sseFollower follows a channel's stream as EventSource does: when a
// stream ends it reconnects, after the retry delay, with the last event's
// id as Last-Event-ID, and keeps trying while it is refused (a 503 during a
// store outage, a refused connection during a reload). Unlike EventSource
// it also retries after a non-200 reply, as the JavaScript client must.
type sseFollower struct {
	got   chan message   // every message received, in arrival order
	ended chan time.Time // when a stream ended under the follower
	drop  chan struct{}  // asks the follower to drop its connection
	stop  chan struct{}
	done  chan struct{}
}

// sseRetryDelay stands in for the retry field (2s) the server sends, which
// the test need not wait out.
const sseRetryDelay = 50 * time.Millisecond

func followSSE(t *testing.T, rawURL, channel string) *sseFollower {
	f := &sseFollower{got: make(chan message, 1024), ended: make(chan time.Time, 16),
		drop: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Transport: &http.Transport{}}
	go func() {
		defer close(f.done)
		lastID := ""
		for {
			s, _, err := dialSSE(client, rawURL, lastID)
			if err != nil || s == nil {
				select {
				case <-f.stop:
					return
				case <-time.After(sseRetryDelay): // the client's retry delay, as EventSource's
				}
				continue
			}
			lastID = f.read(t, s, channel, lastID)
			s.close()
			select {
			case <-f.stop:
				return
			default:
			}
		}
	}()
	t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

// read passes on the messages of stream s until it ends, the follower is
// told to drop it or to stop, and returns the last event's id.
func (f *sseFollower) read(t *testing.T, s *sseStream, channel, lastID string) string {
	for {
		select {
		case ev := <-s.events:
			switch {
			case ev.end != nil:
				f.ended <- time.Now()
				return lastID
			case ev.comment:
				continue
			}
			var rep reply
			if err := json.Unmarshal([]byte(ev.data), &rep); err != nil || rep.ReturnCode != 1 {
				t.Errorf("event %q: %v", ev.data, err)
				return lastID
			}
			for _, m := range rep.Messages[channel] {
				f.got <- m
			}
			lastID = ev.id
		case <-f.drop:
			return lastID
		case <-f.stop:
			return lastID
		}
	}
}

// tryPublish publishes content once, with an idempotency key so that a
// retry of a publish whose reply was lost does not publish twice, and
// reports whether it was stored.
func tryPublish(base, channel, content string) (int64, bool) {
	req, err := http.NewRequest(http.MethodPost, base+"/channels/"+url.PathEscape(channel)+".json",
		strings.NewReader(url.Values{"content": {content}, "idempotency_key": {content}}.Encode()))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := longPoll.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	var rep reply
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil || rep.ReturnCode != 1 {
		return 0, false
	}
	return rep.MessageID, true
}

// mustPublish publishes content, retrying until it is stored: through a
// reload's closed connections and a store outage's -4.
func mustPublish(t *testing.T, base, channel, content string) int64 {
	t.Helper()
	deadline := time.Now().Add(ssePatience)
	for {
		if id, ok := tryPublish(base, channel, content); ok {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing %q: not stored within %v", content, ssePatience)
		}
		time.Sleep(sseRetryDelay) // a publisher's retry delay
	}
}

// disruption is something that ends streams under their clients.
type disruption struct {
	name string
	do   func(t *testing.T, f *sseFollower)
	// ends: the server ends the stream, within endsWithin if it is set.
	ends       bool
	endsWithin time.Duration
}

// runReconnects follows a channel's stream while it publishes batches of
// messages, alternating between the publish bases, each batch right after
// a disruption, while the follower reconnects; then it checks that the
// follower got every message exactly once, in id order.
func runReconnects(t *testing.T, streamBase string, publishBases []string, disruptions []disruption) {
	ch := fmt.Sprint("sse-follow-", time.Now().UnixNano())
	registerChannel(t, publishBases[0], ch)
	f := followSSE(t, streamBase+"/channels/"+ch+".sse?since=0", ch)
	var want []int64
	n := 0
	publishBatch := func() {
		for range 5 {
			want = append(want, mustPublish(t, publishBases[n%len(publishBases)], ch, fmt.Sprint(ch, "-", n)))
			n++
		}
	}
	await := func(what string) {
		t.Helper()
		for len(want) > 0 {
			select {
			case m := <-f.got:
				if m.ID != want[0] {
					t.Fatalf("%s: got message %d (%q), want %d next", what, m.ID, m.Content, want[0])
				}
				want = want[1:]
			case <-time.After(ssePatience):
				t.Fatalf("%s: %d messages not received within %v", what, len(want), ssePatience)
			}
		}
	}
	publishBatch()
	await("before any disruption")
	for _, d := range disruptions {
		start := time.Now()
		d.do(t, f)
		if d.ends {
			select {
			case at := <-f.ended:
				if d.endsWithin > 0 && at.Sub(start) > d.endsWithin {
					t.Fatalf("%s: the stream ended %v after it began, want within %v", d.name, at.Sub(start), d.endsWithin)
				}
			case <-time.After(ssePatience):
				t.Fatalf("%s: the stream did not end", d.name)
			}
		}
		publishBatch()
		await("after " + d.name)
	}
	// A last message, after which nothing else may come: no repeat of
	// what came before.
	publishBatch()
	await("at the end")
	select {
	case m := <-f.got:
		t.Fatalf("a message repeated: %d %q", m.ID, m.Content)
	default:
	}
}

// No message is lost or repeated while streams reconnect: after a reload,
// after the client drops its connection and, on Redis, after an outage,
// with the stream on one node and publishes on both.
func TestSSEReconnectsLoseAndRepeatNothing(t *testing.T) {
	drop := disruption{name: "client drop", do: func(t *testing.T, f *sseFollower) { f.drop <- struct{}{} }}
	reload := func(sites string) disruption {
		// Stop and reload end every stream at once, not at the grace
		// period's end.
		return disruption{name: "reload", ends: true, endsWithin: time.Second, do: func(t *testing.T, f *sseFollower) {
			if err := loadCaddyfile(sites); err != nil {
				t.Fatal(err)
			}
		}}
	}

	t.Run("memory", func(t *testing.T) {
		startCaddy(t, sseSites)
		runReconnects(t, base, []string{base}, []disruption{
			reload(strings.Replace(sseSites, "sse_heartbeat 1500ms", "sse_heartbeat 1600ms", 1)),
			drop,
			reload(sseSites),
		})
	})

	t.Run("redis, two nodes", func(t *testing.T) {
		srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
		a, b := twoNodes(t, srv)
		outage := disruption{name: "Redis outage", ends: true, do: func(t *testing.T, f *sseFollower) {
			srv.Kill()
			// The follower is refused while Redis is down: wait for one
			// refusal before Redis comes back.
			deadline := time.Now().Add(ssePatience)
			for {
				if r := read(t, a, "x", 0); r.status == http.StatusServiceUnavailable {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the node did not notice Redis was down")
				}
				time.Sleep(sseRetryDelay) // polling an observable state
			}
			srv.Restart()
		}}
		runReconnects(t, a, []string{a, b.Base}, []disruption{
			reload(clusterSite(srv.URL(), "sse_heartbeat 2s")(base)),
			drop,
			outage,
		})
	})
}
