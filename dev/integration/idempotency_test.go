package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// publishKeyed publishes with an idempotency key, in the Idempotency-Key
// header or, with inForm, the idempotency_key field.
func publishKeyed(t *testing.T, channel, content, key string, inForm bool) response {
	t.Helper()
	form := url.Values{"content": {content}}
	if inForm {
		form.Set("idempotency_key", key)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/channels/"+url.PathEscape(channel)+".json", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !inForm {
		req.Header.Set("Idempotency-Key", key)
	}
	return send(t, req)
}

// A retried keyed publish counts in caddy_comet_publishes_replayed_total,
// not in caddy_comet_messages_published_total.
func TestReplayedPublishMetric(t *testing.T) {
	startCaddy(t, monitoringSites)
	registerChannel(t, base, "keyed")
	for range 3 {
		mustCode(t, publishKeyed(t, "keyed", "once", "the-key", false), 200, 1, "")
	}
	if n := metricValue(t, `caddy_comet_publishes_replayed_total{hub="monitoring"}`); n != 2 {
		t.Errorf("caddy_comet_publishes_replayed_total %v after a publish and two retries, want 2", n)
	}
	if n := metricValue(t, `caddy_comet_messages_published_total{hub="monitoring"}`); n != 1 {
		t.Errorf("caddy_comet_messages_published_total %v after a publish and two retries, want 1", n)
	}
}

// While Redis stalls past the store's read_timeout, a publish is answered
// 503 -4 although Redis runs it when it wakes: its outcome is unknown to the
// publisher. A publisher that retries with the same Idempotency-Key until it
// gets return_code 1 has every message stored exactly once, in order.
func TestKeyedPublishesSurviveARedisStall(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "local")
	startCaddy(t, redisSite("stall", srv.URL(), "")) // read_timeout 1s
	registerChannel(t, base, "stall", "max_messages", "1000")

	stalled := make(chan error, 1)
	go func() {
		// Past the store's 1s read_timeout several times over.
		_, err := srv.Run("DEBUG", "SLEEP", "3.5")
		stalled <- err
	}()

	var (
		ids                   []int64
		unavailable, replayed int
		sleepOver             bool
		afterSleep            int
		deadline              = time.Now().Add(60 * time.Second)
	)
	// Publish until the stall is over and a few messages more have gone
	// through: whichever publishes the stall caught are retried.
	for i := 0; !sleepOver || afterSleep < 5; i++ {
		select {
		case err := <-stalled:
			if err != nil {
				t.Fatalf("DEBUG SLEEP: %v", err)
			}
			sleepOver = true
		default:
		}
		if sleepOver {
			afterSleep++
		}
		content, key := fmt.Sprint("m-", i), fmt.Sprint("key-", i)
		for attempt := 0; ; attempt++ {
			if time.Now().After(deadline) {
				t.Fatalf("message %d not published within 60s", i)
			}
			r := publishKeyed(t, "stall", content, key, attempt%2 == 1)
			rep := r.json(t)
			if r.status == http.StatusServiceUnavailable && rep.ReturnCode == -4 {
				unavailable++
				continue
			}
			if r.status != http.StatusOK || rep.ReturnCode != 1 {
				t.Fatalf("publishing %s: %d %s", content, r.status, r.body)
			}
			if strings.Contains(r.body, `"replayed":true`) {
				replayed++
			}
			ids = append(ids, rep.MessageID)
			break
		}
	}
	if unavailable == 0 {
		t.Fatal("no publish was caught by the stall: the test proved nothing")
	}
	// Whether the retries saw replays depends on the order Redis ran the
	// queued attempts in after the stall; the channel below says whether
	// any message was stored twice.
	t.Logf("%d messages, %d publishes answered -4, %d retries answered as replays", len(ids), unavailable, replayed)

	rep := mustCode(t, read(t, base, "stall", 0), 200, 1, "")
	got := rep.Messages["stall"]
	if len(got) != len(ids) {
		t.Fatalf("channel holds %d messages, want exactly %d: %+v", len(got), len(ids), got)
	}
	for i, m := range got {
		if want := fmt.Sprint("m-", i); m.Content != want || m.ID != ids[i] {
			t.Fatalf("message %d is %q id %d, want %q id %d (replies gave the ids)", i, m.Content, m.ID, want, ids[i])
		}
	}
}
