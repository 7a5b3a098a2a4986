package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/simple-comet/caddy-comet"
	"github.com/simple-comet/caddy-comet/internal/caddyproc"
)

// repoRoot is the repository's root, where examples/ and docs/ are, from
// this package's directory (the test's working directory).
const repoRoot = "../.."

func TestMain(m *testing.M) {
	os.Exit(runExclusively(m))
}

// integrationLock keeps the lock file of runExclusively open for as long as
// the process lives.
var integrationLock *os.File

// runExclusively runs the tests while holding a machine-wide lock: the
// admin port and the site ports are fixed, so two test processes (two
// packages' worth of `go test`, or two people on one machine) would load
// their configurations into each other's Caddy.
func runExclusively(m *testing.M) int {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "caddy-comet-integration.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The lock is held until the process is gone, never closed (nor
	// collected) before: this process's Caddy serves its admin endpoint
	// until then (os.Exit of a -race binary takes a while), and a process
	// let in earlier would load its configurations into this one's Caddy,
	// which then goes away under it.
	integrationLock = lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		fmt.Fprintln(os.Stderr, "locking the integration tests:", err)
		return 1
	}

	// Keep Caddy's storage out of the user's home (globalOptions points
	// storage here; persist_config off keeps autosave.json out too).
	dir, err := os.MkdirTemp("", "caddy-comet-integration")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	return caddyproc.RunTests(m)
}

// globalOptions start every test Caddyfile: the admin API caddytest expects,
// no trust store changes, and a short grace period.
const globalOptions = `{
	admin localhost:2999
	persist_config off
	storage file_system {$XDG_DATA_HOME}/caddy
	skip_install_trust
	grace_period 1s
	http_port 9080
	https_port 9443
}
`

// startCaddy loads a Caddyfile (after globalOptions) into the in-process
// Caddy, starting it on first use.
func startCaddy(t *testing.T, sites string) *caddytest.Tester {
	t.Helper()
	return startCaddyWith(t, "", sites)
}

// startCaddyWith is startCaddy with more global options. It starts from
// empty hubs: it first loads a configuration without sites, which closes
// the hubs of the one before, so that a test does not find what an earlier
// test (or the same test, under -count) left in a hub of the same name.
func startCaddyWith(t *testing.T, options, sites string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(globalOptions, "caddyfile")
	awaitListenersClosed(t, sitePorts...)
	tester.InitServer(withOptions(options)+sites, "caddyfile")
	forgetConnections()
	return tester
}

// withOptions returns globalOptions with more global options at its end.
func withOptions(options string) string {
	return strings.TrimSuffix(globalOptions, "}\n") + options + "}\n"
}

// sitePorts are the addresses the tests' sites listen on.
var sitePorts = []string{"127.0.0.1:9080", "127.0.0.1:9081"}

// awaitListenersClosed waits until nothing listens on addrs. Caddy returns
// from a configuration change once the old servers' shutdowns have been
// scheduled, not run (caddyhttp.App.Stop says so); its listeners use
// SO_REUSEPORT, so a new server on the same port can start beside an old
// listener that has not closed yet, and a connection the kernel hands to
// the old one is reset when it closes. Refused connections mean the old
// listeners are gone. Caddy signals nothing the test could wait on.
func awaitListenersClosed(t *testing.T, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break // refused (or unreachable): no listener
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("%s still accepts connections 10s after its server was stopped", addr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// forgetConnections drops idle keep-alive connections after a configuration
// change: the old server closes them as it shuts down, and a POST sent on
// one just then fails with EOF (Go retries only idempotent requests). Real
// publishers meet the same race at a reload and must retry.
func forgetConnections() {
	longPoll.Transport.(*http.Transport).CloseIdleConnections()
}

// loadCaddyfile replaces the running configuration, as `caddy reload` does,
// and returns the admin API's error, if any.
func loadCaddyfile(sites string) error {
	return loadCaddyfileWith("", sites)
}

// loadCaddyfileWith is loadCaddyfile with more global options, as
// startCaddyWith takes them.
func loadCaddyfileWith(options, sites string) error {
	req, err := http.NewRequest(http.MethodPost, "http://localhost:2999/load", strings.NewReader(withOptions(options)+sites))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("loading config: %s: %s", res.Status, body)
	}
	forgetConnections()
	return nil
}

// longPoll is a client for requests the server holds; caddytest's own client
// gives up after 5 seconds.
var longPoll = &http.Client{
	Timeout: 2 * time.Minute,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 512,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	},
}

// reply is an API reply, decoded loosely enough for every call.
type reply struct {
	ReturnCode   int                        `json:"return_code"`
	ErrorMessage string                     `json:"error_message"`
	ChannelID    string                     `json:"channel_id"`
	ClientID     string                     `json:"client_id"`
	MessageID    int64                      `json:"message_id"`
	Removed      *bool                      `json:"removed"`
	Since        int64                      `json:"since"`
	LastID       int64                      `json:"last_id"`
	Messages     map[string][]message       `json:"messages"`
	Status       json.RawMessage            `json:"status"`
	Extra        map[string]json.RawMessage `json:"-"`
}

type message struct {
	Content string `json:"content"`
	ID      int64  `json:"id"`
	TS      int64  `json:"ts"`
}

// response is what a test needs of an HTTP response.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t *testing.T) reply {
	t.Helper()
	var rep reply
	body := strings.TrimSuffix(strings.TrimPrefix(r.body, "/*-secure- "), " */") // quote_json
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("reply is not JSON: %v: %q", err, r.body)
	}
	return rep
}

func do(t *testing.T, method, rawURL string, form url.Values) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return send(t, req)
}

// send sends a request with the long-poll client.
func send(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := longPoll.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func get(t *testing.T, rawURL string) response { t.Helper(); return do(t, http.MethodGet, rawURL, nil) }

func post(t *testing.T, rawURL string, form url.Values) response {
	t.Helper()
	return do(t, http.MethodPost, rawURL, form)
}

// mustOK posts and fails the test unless the reply's return code is want.
func mustCode(t *testing.T, r response, wantStatus, wantCode int, wantMessage string) reply {
	t.Helper()
	rep := r.json(t)
	if r.status != wantStatus || rep.ReturnCode != wantCode || (wantMessage != "" && rep.ErrorMessage != wantMessage) {
		t.Fatalf("got HTTP %d %q, want HTTP %d return_code %d %q", r.status, r.body, wantStatus, wantCode, wantMessage)
	}
	return rep
}

func registerChannel(t *testing.T, base, id string, extra ...string) {
	t.Helper()
	form := url.Values{"channel_id": {id}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	mustCode(t, post(t, base+"/channels.json", form), 200, 1, "")
}

func publish(t *testing.T, base, channel, content string) int64 {
	t.Helper()
	rep := mustCode(t, post(t, base+"/channels/"+url.PathEscape(channel)+".json", url.Values{"content": {content}}), 200, 1, "")
	return rep.MessageID
}

func registerClient(t *testing.T, base, id string) {
	t.Helper()
	mustCode(t, post(t, base+"/clients.json", url.Values{"client_id": {id}}), 200, 1, "")
}

// read reads channels (joined by '|') since an id.
func read(t *testing.T, base, channels string, since int64, extra ...string) response {
	t.Helper()
	q := url.Values{"since": {fmt.Sprint(since)}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return get(t, base+"/channels/"+url.PathEscape(channels)+".json?"+q.Encode())
}

// heldReads waits until the hub reports n held reads through the status call.
func heldReads(t *testing.T, base string, n int) {
	t.Helper()
	heldReadsAt(t, base+"/status.json", n)
}

// heldReadsAt is heldReads with the status call's whole URL (one that
// carries a token, say).
func heldReadsAt(t *testing.T, statusURL string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st struct {
			Held int `json:"held_connections_count"`
		}
		rep := mustCode(t, get(t, statusURL), 200, 1, "")
		if err := json.Unmarshal(rep.Status, &st); err != nil {
			t.Fatalf("status: %v", err)
		}
		if st.Held == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("held reads: %d, want %d", st.Held, n)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}
