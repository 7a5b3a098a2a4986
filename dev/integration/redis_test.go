package integration

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// redisSite is a site on the in-process Caddy whose hub lives in Redis.
// extra goes into the comet block.
func redisSite(hubName, redisURL, extra string) string {
	return fmt.Sprintf(`
http://127.0.0.1:9080 {
	comet {
		hub %s
		http_timeout 20s
		enable_status
		store redis %s {
			dial_timeout 1s
			read_timeout 1s
		}
		%s
	}
}
`, hubName, redisURL, extra)
}

// awaitReply waits for a held read's reply, failing after 10s: the read must be
// answered well before its 20s http_timeout.
func awaitReply(t *testing.T, replies <-chan response, what string) response {
	t.Helper()
	select {
	case r := <-replies:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: held read not answered within 10s", what)
		return response{}
	}
}

func goRead(t *testing.T, base, channels string, since int64, extra ...string) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- read(t, base, channels, since, extra...) }()
	return ch
}

// The whole API works on the redis store, and the state is in Redis.
func TestRedisStoreAPI(t *testing.T) {
	srv := redistest.Start(t)
	startCaddy(t, redisSite("redis-api", srv.URL(), ""))
	registerChannel(t, base, "r-news", "max_messages", "2")
	registerClient(t, base, "r-alice")
	id1 := publish(t, base, "r-news", "one")
	id2 := publish(t, base, "r-news", "two <b>")
	id3 := publish(t, base, "r-news", "three")
	if !(id1 < id2 && id2 < id3) {
		t.Fatalf("ids %d %d %d", id1, id2, id3)
	}
	rep := mustCode(t, read(t, base, "r-news|r-unknown", 0, "client_id", "r-alice"), 200, 1, "")
	got := rep.Messages["r-news"]
	if len(got) != 2 || got[0].Content != "two <b>" || got[1].ID != id3 || rep.LastID != id3 {
		t.Fatalf("retention 2: %+v last_id %d", rep.Messages, rep.LastID)
	}
	if _, ok := rep.Messages["r-unknown"]; ok {
		t.Fatal("unknown channel in the reply")
	}
	mustCode(t, read(t, base, "r-news", 0, "client_id", "r-bob"), 200, -3, "Unregistered client_id")
	mustCode(t, post(t, base+"/channels.json", url.Values{"channel_id": {"r-news"}}), 200, -2, "Channel already exists")

	st := get(t, base+"/status.json")
	if !strings.Contains(st.body, `"r-alice"`) || !strings.Contains(st.body, `"r-news"`) {
		t.Fatalf("status: %s", st.body)
	}
	if out, err := srv.Run("EXISTS", "{comet:redis-api}:ch:r-news", "{comet:redis-api}:client:r-alice"); err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("keys in Redis: %q %v", out, err)
	}
}

// With Redis down the node answers -4 with HTTP 503 at once, held reads are
// answered instead of left waiting, and when Redis is back (same process, no
// reload) traffic resumes with what Redis kept.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	startCaddy(t, redisSite("redis-outage", srv.URL(), ""))
	registerChannel(t, base, "o-chan")
	id := publish(t, base, "o-chan", "kept")
	held := goRead(t, base, "o-chan", id)
	heldReads(t, base, 1)

	srv.Kill()
	r := awaitReply(t, held, "redis killed")
	if rep := r.json(t); !(r.status == 200 && rep.ReturnCode == 1 && len(rep.Messages["o-chan"]) == 0) &&
		!(r.status == 503 && rep.ReturnCode == -4) {
		t.Fatalf("held read when redis went away: %d %s, want an empty reply or -4", r.status, r.body)
	}
	for _, r := range []response{
		post(t, base+"/channels/o-chan.json", url.Values{"content": {"lost?"}}),
		post(t, base+"/channels.json", url.Values{"channel_id": {"o-new"}}),
		post(t, base+"/clients.json", url.Values{"client_id": {"o-client"}}),
		read(t, base, "o-chan", 0),
		get(t, base+"/status.json"),
	} {
		mustCode(t, r, 503, -4, "Store unavailable")
	}

	srv.Restart()
	// The node reconnects by itself; nothing tells the test when, so poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := read(t, base, "o-chan", 0)
		if r.status == 200 {
			rep := mustCode(t, r, 200, 1, "")
			if m := rep.Messages["o-chan"]; len(m) != 1 || m[0].ID != id || m[0].Content != "kept" {
				t.Fatalf("after the restart: %s", r.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %s 10s after redis came back", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	held = goRead(t, base, "o-chan", id)
	heldReads(t, base, 1)
	id2 := publish(t, base, "o-chan", "after")
	rep := mustCode(t, awaitReply(t, held, "publish after recovery"), 200, 1, "")
	if m := rep.Messages["o-chan"]; len(m) != 1 || m[0].ID != id2 {
		t.Fatalf("held read after recovery: %+v", rep.Messages)
	}
}

// A reload that changes the store's options opens a new store on the same
// Redis: nothing is lost, and held reads resume with since.
func TestRedisReloadWithNewStoreOptions(t *testing.T) {
	srv := redistest.Start(t)
	startCaddy(t, redisSite("redis-reload", srv.URL(), ""))
	registerChannel(t, base, "rl-chan")
	registerClient(t, base, "rl-client")
	id1 := publish(t, base, "rl-chan", "before")
	held := goRead(t, base, "rl-chan", id1, "client_id", "rl-client")
	heldReads(t, base, 1)

	changed := strings.Replace(redisSite("redis-reload", srv.URL(), ""), "read_timeout 1s", "read_timeout 2s", 1)
	if err := loadCaddyfile(changed); err != nil {
		t.Fatal(err)
	}
	rep := mustCode(t, awaitReply(t, held, "reload"), 200, 1, "")
	if len(rep.Messages["rl-chan"]) != 0 || rep.LastID != id1 {
		t.Fatalf("held read at reload: %+v last_id %d, want empty at %d", rep.Messages, rep.LastID, id1)
	}
	id2 := publish(t, base, "rl-chan", "after")
	rep = mustCode(t, read(t, base, "rl-chan", rep.LastID, "client_id", "rl-client"), 200, 1, "")
	if m := rep.Messages["rl-chan"]; len(m) != 1 || m[0].ID != id2 {
		t.Fatalf("after reload: %+v", rep.Messages)
	}
	rep = mustCode(t, read(t, base, "rl-chan", 0), 200, 1, "")
	if len(rep.Messages["rl-chan"]) != 2 {
		t.Fatalf("history after reload: %+v", rep.Messages)
	}
}

// A store Caddy cannot reach refuses the configuration, naming the problem,
// and leaves the running one in place.
func TestRedisUnreachableRefusesConfig(t *testing.T) {
	srv := redistest.Start(t)
	startCaddy(t, redisSite("redis-refuse-ok", srv.URL(), ""))
	registerChannel(t, base, "rf-chan")
	port := freeport.Get(t)
	err := loadCaddyfile(redisSite("redis-refuse", fmt.Sprintf("redis://127.0.0.1:%d/0", port), ""))
	if err == nil || !strings.Contains(err.Error(), "connecting to redis") {
		t.Fatalf("config with an unreachable redis: %v, want a connection error", err)
	}
	publish(t, base, "rf-chan", "still serving")
}
