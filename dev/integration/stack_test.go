package integration

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
	"github.com/simple-comet/caddy-comet/internal/caddyproc"
)

// stackReads is how many reads a case holds: enough that the stack
// allocator's granularity (whole spans, per-P caches) costs well under a
// KiB per read.
const stackReads = 300

// stackSite is a Caddyfile under test: its site block, where on it the API
// is read and managed, and the stack its held reads' request goroutines
// fit.
type stackSite struct {
	name string
	// stack is the request goroutine's stack size (a power of two) that the
	// site's held reads stay within, from their first byte read to their
	// reply written, by store.
	stack map[string]int64
	// site returns the site block for base, with settings in every comet
	// block.
	site        func(t *testing.T, base, settings string) string
	read, admin string // path prefixes
}

var stackSites = []stackSite{
	{
		name: "bare",
		// On Redis, some of the held reads (a quarter to a half) outgrow
		// 8 KiB already; see docs/design.md, "The stack budget of a held
		// read".
		stack: map[string]int64{"memory": 8 << 10, "redis": 16 << 10},
		site: func(_ *testing.T, base, settings string) string {
			return fmt.Sprintf("\n%s {\n\tcomet {\n%s\t}\n}\n", base, settings)
		},
	},
	{
		name:  "docs public/private",
		stack: map[string]int64{"memory": 16 << 10, "redis": 16 << 10},
		site:  readmePublicPrivate,
		read:  "/comet",
		admin: "/comet-admin",
	},
	{
		name:  "log, encode, header, handle_path",
		stack: map[string]int64{"memory": 16 << 10, "redis": 16 << 10},
		site: func(_ *testing.T, base, settings string) string {
			return fmt.Sprintf(`
%s {
	log {
		output discard
	}
	encode
	header X-Content-Type-Options nosniff
	handle_path /comet/* {
		comet {
%s		}
	}
}
`, base, settings)
		},
		read:  "/comet",
		admin: "/comet",
	},
}

// readmePublicPrivate is the "Public subscribe route, protected publish
// route" Caddyfile of docs/security.md, as the doc has it, served at base.
func readmePublicPrivate(t *testing.T, base, settings string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot, securityDoc))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "## Public subscribe route, protected publish route\n")
	_, block, ok2 := strings.Cut(section, "```caddyfile\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 || !strings.HasPrefix(block, "comet.example.com {") {
		t.Fatal(securityDoc + ": no Caddyfile under \"Public subscribe route, protected publish route\"")
	}
	block = strings.Replace(block, "comet.example.com", base, 1)
	block = strings.ReplaceAll(block, "comet {\n", "comet {\n"+settings)
	return "\n" + strings.ReplaceAll(block, "comet @backend {\n", "comet @backend {\n"+settings)
}

// TestHeldReadStackBudget pins the stack budget of a held read; docs/design.md,
// "The stack budget of a held read", says what it is and how this measures it.
func TestHeldReadStackBudget(t *testing.T) {
	// GOGC=off: no collection shrinks a stack during a case;
	// adaptivestackstart=0: every goroutine starts at 2 KiB.
	env := []string{"GODEBUG=adaptivestackstart=0", "GOGC=off"}
	for _, site := range stackSites {
		for _, store := range []string{"memory", "redis"} {
			t.Run(site.name+"/"+store, func(t *testing.T) {
				// Each site in a process of its own: they measure
				// nothing of each other's, and wait for timeouts
				// side by side.
				t.Parallel()
				settings := "\t\thttp_timeout 1s\n"
				if store == "redis" {
					settings += "\t\tstore redis " + redistest.Start(t).URL() + "\n"
				}
				p := caddyproc.StartEnv(t, env,
					func(base string) string { return site.site(t, base, settings) })
				for _, format := range []string{"json", "jsonp"} {
					for _, release := range []string{"publish", "timeout", "delete"} {
						name := fmt.Sprintf("%s, %s store, %s, released by %s", site.name, store, format, release)
						measureHeldStacks(t, p, site, site.stack[store], format, release, name)
					}
				}
			})
		}
	}
}

// measureHeldStacks holds stackReads reads of one kind on p, releases them,
// and fails the test if they took more than stackBudget of stack each, held
// or answered.
func measureHeldStacks(t *testing.T, p *caddyproc.Process, site stackSite, stack int64, format, release, name string) {
	t.Helper()
	channel := strings.NewReplacer(" ", "-", ",", "").Replace(format + "-" + release)
	registerChannel(t, p.Base+site.admin, channel)
	// A collection now, so that the baseline holds no garbage stacks; none
	// runs after it (GOGC=off).
	get(t, p.Admin+"/debug/pprof/heap?gc=1")
	before := stackInuse(t, p)

	// Each read names an unknown channel of its own besides the real one,
	// so that no two share a store read (hub/sharedreads.go): each leads one,
	// the deepest way through the hub.
	host := strings.TrimPrefix(p.Base, "http://")
	conns := make([]net.Conn, stackReads)
	for i := range conns {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		path := fmt.Sprintf("%s/channels/%s.%s?since=9007199254740991", site.read,
			url.PathEscape(fmt.Sprintf("%s|unknown-%d", channel, i)), format)
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: gzip\r\n\r\n", path, host); err != nil {
			t.Fatal(err)
		}
	}
	awaitHeld(t, p, stackReads)
	held := stackInuse(t, p)

	content := ""
	switch release {
	case "publish":
		content = strings.Repeat("stack budget ", 100) // over encode's minimum_length
		mustCode(t, post(t, p.Base+site.admin+"/channels/"+channel+".json", url.Values{"content": {content}}), 200, 1, "")
	case "delete":
		mustCode(t, do(t, http.MethodDelete, p.Base+site.admin+"/channels/"+channel+".json", nil), 200, 2, "")
	}
	for i, c := range conns {
		body := readReply(t, c)
		if !strings.Contains(body, `"return_code":1`) || !strings.Contains(body, content) ||
			content == "" && !strings.Contains(body, `"messages":{}`) {
			t.Fatalf("%s: reply %d: %s", name, i, body)
		}
	}
	answered := stackInuse(t, p)
	for _, c := range conns {
		c.Close()
	}

	// A held read takes stack for its request goroutine and 2 KiB for
	// net/http's background read. Reuse of the stacks that earlier cases
	// left makes the figure up to 2 KiB less; a request goroutine that
	// outgrew stack would add as much again.
	budget := stack + 4<<10
	perRead := func(after int64) float64 { return float64(after-before) / stackReads / 1024 }
	t.Logf("%s: stack per read %.1f KiB held, %.1f KiB answered", name, perRead(held), perRead(answered))
	if held-before > budget*stackReads || answered-before > budget*stackReads {
		t.Errorf("%s: %.1f KiB of stack per read held, %.1f KiB once answered, over %d KiB: a held read outgrew its %d KiB stack (see docs/design.md, \"The stack budget of a held read\")",
			name, perRead(held), perRead(answered), budget>>10, stack>>10)
	}
}

// readReply reads the reply to a read from its connection, which stays
// open, and returns its body.
func readReply(t *testing.T, c net.Conn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading a held read's reply: %v", err)
	}
	defer res.Body.Close()
	var body io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		if body, err = gzip.NewReader(res.Body); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("reading a held read's reply: %v", err)
	}
	return string(b)
}

// stackInuse returns the caddy process's goroutine stack bytes.
func stackInuse(t *testing.T, p *caddyproc.Process) int64 {
	t.Helper()
	var vars struct {
		MemStats struct{ StackInuse int64 } `json:"memstats"`
	}
	if err := json.Unmarshal([]byte(get(t, p.Admin+"/debug/vars").body), &vars); err != nil {
		t.Fatal(err)
	}
	return vars.MemStats.StackInuse
}

// awaitHeld waits until the caddy process holds n reads.
func awaitHeld(t *testing.T, p *caddyproc.Process, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := metricValueAt(t, p.Admin, `caddy_comet_held_reads{hub="default"}`)
		if int(v) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("held reads: %v, want %d", v, n)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}

// TestSSEStreamStack measures the stack of an open event stream on the
// bare Caddyfile, the way TestHeldReadStackBudget measures a held read's: a
// stream's goroutine parks in the hub between events as a held read does,
// having written and flushed events. Sending the response's header, and
// writing an event larger than net/http's buffer, go deeper than a long
// poll's reply, so those are written by the hub's writer goroutines; a
// small event is written from the stream's own (docs/design.md, "Event
// streams: writes"). Each stream here gets its first event, a small one
// and one over the size written inline; this pins the stream's goroutine
// to a held read's budget on each store: 8 KiB on the memory store, 16 on
// Redis.
func TestSSEStreamStack(t *testing.T) {
	env := []string{"GODEBUG=adaptivestackstart=0", "GOGC=off"}
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			settings := ""
			if store == "redis" {
				settings = "\t\tstore redis " + redistest.Start(t).URL() + "\n"
			}
			site := stackSites[0]
			p := caddyproc.StartEnv(t, env, func(base string) string { return site.site(t, base, settings) })
			registerChannel(t, p.Base, "sse-stack")
			get(t, p.Admin+"/debug/pprof/heap?gc=1")
			before := stackInuse(t, p)
			host := strings.TrimPrefix(p.Base, "http://")
			readers := make([]*bufio.Reader, stackReads)
			for i := range readers {
				c, err := net.Dial("tcp", host)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				// A channel list of its own per stream, so that no two
				// share a store read: each leads one.
				path := "/channels/" + url.PathEscape(fmt.Sprintf("sse-stack|unknown-%d", i)) + ".sse"
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
					t.Fatal(err)
				}
				readers[i] = bufio.NewReader(c)
			}
			// Each stream has written its first event, and another after
			// a publish: their goroutines have been as deep as a stream's
			// go, and are parked again.
			readEvent := func(r *bufio.Reader) {
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(line, "data: ") {
						return
					}
				}
			}
			for _, r := range readers {
				readEvent(r)
			}
			for _, content := range []string{"x", strings.Repeat("x", 4<<10)} {
				mustCode(t, post(t, p.Base+"/channels/sse-stack.json", url.Values{"content": {content}}), 200, 1, "")
				for _, r := range readers {
					readEvent(r)
				}
			}
			awaitHeld(t, p, stackReads)
			held := stackInuse(t, p)
			perStream := float64(held-before) / stackReads / 1024
			t.Logf("%s store: stack per open stream %.1f KiB", store, perStream)
			goroutine := int64(8 << 10)
			if store == "redis" {
				goroutine = 16 << 10 // as a held read's (TestHeldReadStackBudget)
			}
			if budget := goroutine + 4<<10; held-before > budget*stackReads {
				t.Errorf("%.1f KiB of stack per stream, over %d KiB: a stream's goroutine outgrew %d KiB", perStream, budget>>10, goroutine>>10)
			}
		})
	}
}
