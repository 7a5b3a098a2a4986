package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// runningHub is the configuration a rejected reload must leave as it is:
// one hub with a setting of each class (retention, timeouts, limits) and a
// route that allows subscribe only.
const runningHub = `
http://127.0.0.1:9080 {
	handle_path /public/* {
		comet {
			hub kept
			allow subscribe
		}
	}
	handle {
		comet {
			hub kept
			messages_per_channel 5
			http_timeout 1s
			max_message_size 100
		}
	}
}
`

// changedHub is runningHub with every one of those settings changed, and
// extra is a site that makes Caddy refuse the whole configuration.
func changedHub(extra string) string {
	return `
http://127.0.0.1:9080 {
	handle_path /public/* {
		comet {
			hub kept
			allow subscribe publish
		}
	}
	handle {
		comet {
			hub kept
			messages_per_channel 1
			http_timeout 1m
			max_message_size 1000
		}
	}
}
` + extra
}

// TestRejectedReloadLeavesTheHubAsItWas loads configurations that change
// every class of hub setting and that Caddy then refuses, once while it
// provisions them (a hub whose Redis cannot be reached) and once while it
// starts them (a site on a port that is taken): the admin API reports the
// error, and the hub runs on with the settings of the configuration that
// still runs. Which of Caddy's apps starts first is not fixed, so the
// start failure is tried a few times, to catch the comet app starting
// before the HTTP app fails as well as after.
func TestRejectedReloadLeavesTheHubAsItWas(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0") // no SO_REUSEPORT: Caddy cannot bind beside it
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	failures := []struct {
		name, site, wantErr string
		tries               int
	}{
		{"provision", `
http://127.0.0.1:9081 {
	comet {
		hub unreachable
		store redis redis://127.0.0.1:1/0
	}
}
`, "unreachable", 1},
		{"start", fmt.Sprintf(`
http://%s {
	respond "never served"
}
`, taken.Addr()), "address already in use", 4},
	}
	startCaddy(t, runningHub)
	for _, f := range failures {
		for try := range f.tries {
			t.Run(fmt.Sprintf("%s failure %d", f.name, try+1), func(t *testing.T) {
				err := loadCaddyfile(changedHub(f.site))
				if err == nil || !strings.Contains(err.Error(), f.wantErr) {
					t.Fatalf("loading a configuration that cannot %s: %v, want an error containing %q", f.name, err, f.wantErr)
				}
				checkRunningHubSettings(t)
			})
		}
	}
}

// checkRunningHubSettings checks each class of runningHub's settings through
// the API, with a subtest each.
func checkRunningHubSettings(t *testing.T) {
	t.Run("retention", func(t *testing.T) {
		channel := fmt.Sprint("kept-", time.Now().UnixNano())
		registerChannel(t, base, channel)
		for i := range 3 {
			publish(t, base, channel, fmt.Sprint("m", i))
		}
		rep := mustCode(t, read(t, base, channel, 0), 200, 1, "")
		if got := len(rep.Messages[channel]); got != 3 {
			t.Errorf("a channel registered after the rejected reload keeps %d of 3 messages, want all 3 (messages_per_channel 5)", got)
		}
	})
	t.Run("timeouts", func(t *testing.T) {
		channel := fmt.Sprint("kept-timeout-", time.Now().UnixNano())
		registerChannel(t, base, channel)
		since := publish(t, base, channel, "seen")
		// http_timeout 1s answers the read empty; the rejected 1m would
		// hold it past the deadline.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/channels/"+channel+".json?since="+fmt.Sprint(since), nil)
		if err != nil {
			t.Fatal(err)
		}
		r := send(t, req)
		rep := mustCode(t, r, 200, 1, "")
		if len(rep.Messages[channel]) != 0 {
			t.Errorf("held read answered with %+v, want no messages", rep.Messages)
		}
	})
	t.Run("limits", func(t *testing.T) {
		channel := fmt.Sprint("kept-limit-", time.Now().UnixNano())
		registerChannel(t, base, channel)
		r := post(t, base+"/channels/"+channel+".json", url.Values{"content": {strings.Repeat("x", 500)}})
		if r.status != 413 {
			t.Errorf("a 500-byte publish got HTTP %d %q, want 413 (max_message_size 100)", r.status, r.body)
		}
	})
	t.Run("allow", func(t *testing.T) {
		channel := fmt.Sprint("kept-allow-", time.Now().UnixNano())
		registerChannel(t, base, channel)
		r := post(t, base+"/public/channels/"+channel+".json", url.Values{"content": {"x"}})
		if r.status != 403 {
			t.Errorf("a publish through the subscribe-only route got HTTP %d %q, want 403", r.status, r.body)
		}
	})
}
