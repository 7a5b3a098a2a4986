package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// healthOK is the body of a healthy probe.
const healthOK = `{"status":"ok","return_code":1,"error_message":""}`

// probeBound is how long a probe may take to fail while the store does not
// answer: the hub's probe timeout plus slack for a loaded machine. It is
// not a speed measurement: the property is that the probe answers instead
// of hanging for the store's read_timeout or the balancer's own timeout.
const probeBound = hub.PingTimeout + 2*time.Second

// probe asks base's health endpoint and times the answer.
func probe(t *testing.T, base string) (response, time.Duration) {
	t.Helper()
	start := time.Now()
	r := get(t, base+"/health.json")
	return r, time.Since(start)
}

// The health endpoint on the memory store: 200 on every route, whatever
// the route allows (it reveals nothing), in both formats, with HEAD, and
// 405 for other methods.
func TestHealthMemory(t *testing.T) {
	startCaddy(t, `
http://127.0.0.1:9080 {
	handle_path /public/* {
		comet {
			hub health
			allow subscribe
		}
	}
	handle_path /publish/* {
		comet {
			hub health
			allow publish
		}
	}
	handle_path /quoted/* {
		comet {
			hub health
			quote_json
		}
	}
	comet {
		hub health
	}
}
`)
	for _, prefix := range []string{"", "/public", "/publish"} {
		r := get(t, base+prefix+"/health.json")
		if r.status != 200 || r.body != healthOK {
			t.Fatalf("GET %s/health.json: %d %q, want 200 %s", prefix, r.status, r.body, healthOK)
		}
		for header, want := range map[string]string{
			"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
		} {
			if got := r.header.Get(header); got != want {
				t.Errorf("GET %s/health.json: %s %q, want %q", prefix, header, got, want)
			}
		}
	}
	if r := get(t, base+"/public/health.jsonp?cb=_JSONP_probe"); r.status != 200 || r.body != "_JSONP_probe("+healthOK+");" {
		t.Fatalf("GET /health.jsonp: %d %q", r.status, r.body)
	}
	if r := get(t, base+"/quoted/health.json"); r.status != 200 || r.body != "/*-secure- "+healthOK+" */" {
		t.Fatalf("GET /health.json with quote_json: %d %q", r.status, r.body)
	}
	if r := do(t, http.MethodHead, base+"/public/health.json", nil); r.status != 200 || r.body != "" ||
		r.header.Get("Content-Length") != fmt.Sprint(len(healthOK)) {
		t.Fatalf("HEAD /health.json: %d %q, Content-Length %q", r.status, r.body, r.header.Get("Content-Length"))
	}
	r := post(t, base+"/health.json", nil)
	mustCode(t, r, 405, -1, "Method not allowed: use GET, HEAD")
	if allow := r.header.Get("Allow"); allow != "GET, HEAD" {
		t.Fatalf("POST /health.json: Allow %q", allow)
	}
}

// The health endpoint on the Redis store: 200 while Redis answers; 503 with
// -4 within the probe's timeout once it is killed; 200 again, with no
// reload, once it is started again on the same port.
func TestHealthRedis(t *testing.T) {
	srv := redistest.Start(t)
	startCaddy(t, redisSite("redis-health", srv.URL(), ""))
	if r, _ := probe(t, base); r.status != 200 || r.body != healthOK {
		t.Fatalf("with redis up: %d %q", r.status, r.body)
	}

	srv.Kill()
	for range 3 {
		r, took := probe(t, base)
		mustCode(t, r, 503, -4, "Store unavailable")
		if took > probeBound {
			t.Fatalf("with redis down the probe took %v, more than %v", took, probeBound)
		}
	}

	srv.Restart()
	// The node reconnects by itself; nothing tells the test when, so poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := probe(t, base)
		if r.status == 200 && r.body == healthOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %q 10s after redis came back", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A Redis that accepts connections but does not answer fails the probe at
// the hub's probe timeout, not at the store's read_timeout (10s here), so a
// balancer learns of it before its own probe times out.
func TestHealthRedisUnresponsive(t *testing.T) {
	srv := redistest.Start(t)
	site := fmt.Sprintf(`
http://127.0.0.1:9080 {
	comet {
		hub redis-health-slow
		store redis %s {
			read_timeout 10s
		}
	}
}
`, srv.URL())
	startCaddy(t, site)
	if r, _ := probe(t, base); r.status != 200 {
		t.Fatalf("with redis up: %d %q", r.status, r.body)
	}
	// Paused for longer than the probe waits; the pause ends by itself.
	if _, err := srv.Run("CLIENT", "PAUSE", "4000", "ALL"); err != nil {
		t.Fatal(err)
	}
	r, took := probe(t, base)
	t.Logf("paused probe answered in %v", took)
	mustCode(t, r, 503, -4, "Store unavailable")
	if took > probeBound {
		t.Fatalf("with redis paused the probe took %v, more than %v", took, probeBound)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, _ := probe(t, base)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %q 15s after the pause began", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
