package integration

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
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
	readAs := func(ip string) response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/channels/ip.json?"+url.Values{"since": {strconv.FormatInt(id, 10)}}.Encode(), nil)
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
