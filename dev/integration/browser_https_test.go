package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
	"github.com/simple-comet/caddy-comet/internal/testcerts"
)

// The automatic HTTPS test runs Let's Encrypt's test CA, Pebble, as Caddy's
// ACME server: Caddy obtains its certificate by itself, with Pebble really
// validating the challenge against Caddy on loopback, and Chromium then runs
// the client over HTTPS and HTTP/2 on both transports (docs/deployment.md,
// "TLS, and proxies in front").

// httpsHost is the site's name. Pebble's DNS server (pebble-challtestsrv)
// answers 127.0.0.1 for it, Chromium maps it there, and certmagic counts a
// name under .test as one for a public CA (not for tls internal).
const httpsHost = "comet.test"

// httpsAddr is where the site listens: globalOptions' https_port. Pebble
// validates on globalOptions' http_port (HTTP-01, 9080) and on this port
// (TLS-ALPN-01), as a public CA validates on ports 80 and 443.
const httpsAddr = "127.0.0.1:9443"

// httpsPage subscribes to one channel with the transport the test names,
// on the page's own origin, and records the contents it gets.
const httpsPage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>caddy-comet over HTTPS</title></head>
<body>
<script src="/comet/simple-comet.min.js"></script>
<script>
var got = [];
SimpleComet.transport = '{TRANSPORT}';
SimpleComet.subscribe('/comet/channels/{CHANNEL}.jsonp', function (reply) {
	var list = reply.messages['{CHANNEL}'] || [], i;
	for (i = 0; i < list.length; i++) got.push(list[i].content);
});
window.onload = SimpleComet.start;
</script>
</body>
</html>
`

// httpsExampleSite is examples/https/Caddyfile, the public site, as the
// test runs it: its global options give way to the test Caddy's, its name
// becomes httpsHost, bound to loopback, and its pages are dir.
func httpsExampleSite(t *testing.T, dir string) string {
	t.Helper()
	caddyfile, err := os.ReadFile(filepath.Join(repoRoot, "examples", "https", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	_, site, ok := strings.Cut(string(caddyfile), "\n}\n")
	if !ok {
		t.Fatal("examples/https/Caddyfile has no global options block")
	}
	for old, repl := range map[string]string{
		"\ncomet.example.com {\n":           "\n" + httpsHost + " {\n\tbind 127.0.0.1\n",
		"root * /var/www/comet.example.com": fmt.Sprintf("root * %q", dir),
	} {
		if !strings.Contains(site, old) {
			t.Fatalf("examples/https/Caddyfile no longer has %q; update this test", old)
		}
		site = strings.ReplaceAll(site, old, repl)
	}
	return site
}

// TestBrowserAutomaticHTTPS runs the public site of examples/https: Caddy
// gets the site's certificate from an ACME CA by itself; a browser that
// trusts that CA's chain reads the hub over HTTP/2 through event streams
// and JSON-P; a reload keeps the certificate (no new order) and the pages
// miss nothing across it.
func TestBrowserAutomaticHTTPS(t *testing.T) {
	chromium := browserChromium(t)
	pebble := startPebble(t, startChallengeDNS(t))

	dir, storage := t.TempDir(), t.TempDir()
	channel := fmt.Sprint("room-", time.Now().UnixNano()) // the hub outlives the test
	for _, transport := range []string{"jsonp", "sse"} {
		page := strings.NewReplacer("{TRANSPORT}", transport, "{CHANNEL}", channel).Replace(httpsPage)
		if err := os.WriteFile(filepath.Join(dir, transport+".html"), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Storage of the test's own, so that no certificate of an earlier run
	// (from an earlier Pebble, with other roots) is found there.
	options := fmt.Sprintf("\tstorage file_system %q\n\tacme_ca %s\n\tacme_ca_root %q\n", storage, pebble.directory, pebble.listenerCA)
	site := httpsExampleSite(t, dir)
	startCaddyWith(t, options, site)
	if t.Failed() {
		t.FailNow()
	}
	// Unload the site before the storage directory goes (cleanups run
	// last first), so that Caddy writes nothing there while it is removed.
	t.Cleanup(func() {
		if err := loadCaddyfile(""); err != nil {
			t.Errorf("unloading the site: %v", err)
		}
	})

	issued := pebble.awaitLine(t, "Issued certificate serial ")
	chain := servedChain(t, httpsAddr, httpsHost, pebble.roots, pebble.log)
	_, serial, _ := strings.Cut(issued, "Issued certificate serial ")
	serial, _, _ = strings.Cut(serial, " ")
	if want, ok := new(big.Int).SetString(serial, 16); !ok || want.Cmp(chain[0].SerialNumber) != 0 {
		t.Fatalf("Caddy serves the certificate with serial %x; Pebble issued: %s", chain[0].SerialNumber, issued)
	}
	t.Logf("Pebble issued the certificate after validating %s", pebble.checkValidated(t))

	// The back end publishes and registers on the admin route (from
	// 127.0.0.1); the public route refuses it.
	origin := "https://" + httpsHost + ":9443"
	hub := &httpsClient{t: t, client: trustingClient(httpsAddr, pebble.roots)}
	hub.post(origin+"/comet-admin/channels.json", url.Values{"channel_id": {channel}}, http.StatusOK, 1)
	hub.post(origin+"/comet/channels/"+channel+".json", url.Values{"content": {"from anyone"}}, http.StatusForbidden, 0)

	// Chromium trusts Pebble's intermediate and finds the site on
	// loopback.
	first := browserTab(t, chromium, spkiFlag(chain[1]),
		chromedp.Flag("host-resolver-rules", "MAP "+httpsHost+" 127.0.0.1"))
	tabs := map[string]*httpsTab{}
	for _, transport := range []string{"jsonp", "sse"} {
		ctx := first
		if transport != "jsonp" {
			ctx = browserNewTab(t, first)
		}
		tabs[transport] = openHTTPSTab(t, ctx, origin+"/"+transport+".html")
	}

	var want []string
	publishSome := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			want = append(want, fmt.Sprint("m", i))
			hub.post(origin+"/comet-admin/channels/"+channel+".json", url.Values{"content": {want[len(want)-1]}}, http.StatusOK, 1)
		}
		for transport, tab := range tabs {
			tab.page.waitFor(fmt.Sprintf("the %s page's messages up to m%d", transport, to-1), `got.join() === `+jsString(strings.Join(want, ",")))
		}
	}
	publishSome(0, 3)
	for transport, tab := range tabs {
		tab.checkHTTP2(transport, 1)
	}

	// A reload (of a configuration that differs, here in grace_period:
	// Caddy does not reload an unchanged one) keeps the certificate:
	// Caddy serves the same one at once, and orders none (a public CA
	// limits how often it issues for a name). It ends the streams and
	// answers the held polls; the pages go on from their last ids over
	// HTTP/2.
	if err := loadCaddyfileWith(options+"\tgrace_period 2s\n", site); err != nil {
		t.Fatalf("reloading: %v", err)
	}
	if after := servedChain(t, httpsAddr, httpsHost, pebble.roots, pebble.log); after[0].SerialNumber.Cmp(chain[0].SerialNumber) != 0 {
		t.Errorf("after the reload Caddy serves the certificate with serial %x, before it %x", after[0].SerialNumber, chain[0].SerialNumber)
	}
	publishSome(3, 6)
	tabs["sse"].checkHTTP2("sse", 2)
	tabs["jsonp"].checkHTTP2("jsonp", 1)
	if n := strings.Count(pebble.log(), "Issued certificate serial "); n != 1 {
		t.Errorf("Pebble issued %d certificates, want 1 (the reload must keep the certificate):\n%s", n, pebble.log())
	}
}

// httpsTab is a page of the test and the responses its tab received.
type httpsTab struct {
	page *browserTabState
	mu   sync.Mutex
	// responses are the tab's HTTP responses, as Chromium's network events
	// report them; event streams are there too (a page's resource timing
	// holds only requests that have ended).
	responses []*network.EventResponseReceived
}

// openHTTPSTab records the responses of a tab, then opens the page in it.
func openHTTPSTab(t *testing.T, ctx context.Context, pageURL string) *httpsTab {
	t.Helper()
	tab := &httpsTab{page: &browserTabState{t: t, ctx: ctx}}
	if err := chromedp.Listen(ctx, func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok {
			tab.mu.Lock()
			tab.responses = append(tab.responses, r)
			tab.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listening to the tab's network events: %v", err)
	}
	tab.page.do("opening "+pageURL, chromedp.Navigate(pageURL))
	return tab
}

// checkHTTP2 checks that every response of the tab came over HTTP/2 and
// that the page read through its transport alone, with at least reads
// requests of it.
func (tab *httpsTab) checkHTTP2(transport string, reads int) {
	t := tab.page.t
	t.Helper()
	tab.mu.Lock()
	defer tab.mu.Unlock()
	var document, script bool
	counts := map[string]int{}
	for _, r := range tab.responses {
		if r.Response.Protocol != "h2" {
			t.Errorf("%s page: %s %s came over %q, want h2", transport, r.Type, r.Response.URL, r.Response.Protocol)
		}
		u, err := url.Parse(r.Response.URL)
		if err != nil {
			t.Fatalf("%s page: response URL %q: %v", transport, r.Response.URL, err)
		}
		switch {
		case r.Type == network.ResourceTypeDocument:
			document = true
		case u.Path == "/comet/simple-comet.min.js", u.Path == "/comet/simple-comet-shared.min.js":
			script = true // the pages' own, or the chat's (shared across tabs)
		case strings.HasPrefix(u.Path, "/comet/channels/"):
			counts[strings.TrimPrefix(filepath.Ext(u.Path), ".")]++
		}
	}
	other := map[string]string{"jsonp": "sse", "sse": "jsonp"}[transport]
	if !document || !script || counts[transport] < reads || counts[other] != 0 {
		t.Errorf("%s page: document %v, client script %v, %d %s reads, %d %s reads; want the page, the script, %d or more %s reads and no %s",
			transport, document, script, counts[transport], transport, counts[other], other, reads, transport, other)
	}
}

// httpsClient calls the comet API over HTTPS from Go.
type httpsClient struct {
	t      *testing.T
	client *http.Client
}

// post sends a form over HTTP/2 and fails the test unless the reply has
// the status and return code given (0: a refusal's JSON error, any code).
func (c *httpsClient) post(path string, form url.Values, status, code int) {
	c.t.Helper()
	res, err := c.client.PostForm(path, form)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	if res.ProtoMajor != 2 {
		c.t.Errorf("POST %s went over %s, want HTTP/2", path, res.Proto)
	}
	r := response{status: res.StatusCode, header: res.Header, body: string(body)}
	if code == 0 {
		if rep := r.json(c.t); r.status != status || rep.ReturnCode > 0 || rep.ErrorMessage == "" {
			c.t.Fatalf("POST %s: HTTP %d %s, want HTTP %d with an error", path, r.status, r.body, status)
		}
		return
	}
	mustCode(c.t, r, status, code, "")
}

// pebbleBinaries finds Debian's pebble and pebble-challtestsrv, or skips
// (fails under CI=true).
func pebbleBinaries(t *testing.T) (pebble, challtestsrv string) {
	t.Helper()
	var missing []string
	paths := map[string]string{}
	for _, name := range []string{"pebble", "pebble-challtestsrv"} {
		path, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		paths[name] = path
	}
	if len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v not installed (apt-get install -y pebble); CI must run the automatic HTTPS test", missing)
		}
		t.Skipf("%v not installed; to run the automatic HTTPS test: apt-get install -y pebble", missing)
	}
	return paths["pebble"], paths["pebble-challtestsrv"]
}

// startChallengeDNS runs pebble-challtestsrv as a DNS server alone (its
// challenge responders off) answering A queries with 127.0.0.1 and AAAA
// queries with nothing, so that Pebble validates on 127.0.0.1. It returns
// the server's address once it answers.
func startChallengeDNS(t *testing.T) string {
	t.Helper()
	_, bin := pebbleBinaries(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Get(t))
	startTestProcess(t, exec.Command(bin,
		"-dns01", addr, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", freeport.Get(t)),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""))
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addrs, err := resolver.LookupHost(ctx, httpsHost)
		cancel()
		if err == nil {
			if !slices.Equal(addrs, []string{"127.0.0.1"}) {
				t.Fatalf("pebble-challtestsrv answers %v for %s, want 127.0.0.1 alone", addrs, httpsHost)
			}
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble-challtestsrv on %s does not answer: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}

// pebbleCA is a running Pebble.
type pebbleCA struct {
	*testProcess
	// directory is the URL of the ACME directory, for acme_ca.
	directory string
	// listenerCA is the PEM file of the CA that signed the certificate of
	// Pebble's own HTTPS listeners, for acme_ca_root. (Debian's package
	// does not ship Pebble's test certificate; the test makes its own.)
	listenerCA string
	// roots holds Pebble's root, which signs (through its intermediate)
	// the certificates it issues; Pebble makes a new one at each start.
	roots *x509.CertPool
}

// startPebble runs Pebble with its VA resolving names through dns, and
// returns once its ACME directory answers.
func startPebble(t *testing.T, dns string) *pebbleCA {
	t.Helper()
	bin, _ := pebbleBinaries(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := testcerts.Write(t, dir) // for Pebble's HTTPS listeners
	listen, management := fmt.Sprintf("127.0.0.1:%d", freeport.Get(t)), fmt.Sprintf("127.0.0.1:%d", freeport.Get(t))
	config, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": management,
		"certificate":             certFile,
		"privateKey":              keyFile,
		// Where the VA connects to validate: Caddy's http_port and
		// https_port in globalOptions.
		"httpPort":                       9080,
		"tlsPort":                        9443,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}})
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(configFile, config, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", configFile, "-dnsserver", dns)
	// No sleeps before validations; every other PEBBLE_ variable of the
	// environment dropped, PEBBLE_VA_ALWAYS_VALID above all: the challenge
	// must really be validated.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PEBBLE_VA_NOSLEEP=1")
	p := &pebbleCA{testProcess: startTestProcess(t, cmd), directory: "https://" + listen + "/dir", listenerCA: caFile}

	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	trustListener := x509.NewCertPool()
	trustListener.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustListener}}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get(p.directory)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("%s", res.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pebble's directory %s: %v\n%s", p.directory, err, p.log())
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
	res, err := client.Get("https://" + management + "/roots/0")
	if err != nil {
		t.Fatalf("Pebble's root: %v", err)
	}
	defer res.Body.Close()
	root, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Pebble's root: %s %v", res.Status, err)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(root) {
		t.Fatalf("Pebble's root is not PEM: %q", root)
	}
	return p
}

// checkValidated checks in Pebble's log that the site's authorization
// became valid through a challenge that Pebble checked against Caddy (not
// skipped, as PEBBLE_VA_ALWAYS_VALID would), and returns which.
func (p *pebbleCA) checkValidated(t *testing.T) string {
	t.Helper()
	log := p.log()
	if !strings.Contains(log, "set VALID by completed challenge") || strings.Contains(log, "Skipping real validation") {
		t.Fatalf("Pebble's log shows no challenge it validated:\n%s", log)
	}
	if strings.Contains(log, "Attempting to validate w/ HTTP: http://"+httpsHost+":9080/") {
		return "HTTP-01"
	}
	return "TLS-ALPN-01"
}

// trustingClient is an HTTP client that sends every request to addr and
// trusts roots alone.
func trustingClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		},
	}}
}

// servedChain connects to addr as a browser does to serverName (SNI, ALPN
// h2) and returns the chain the server presents, once it verifies against
// roots: Caddy serves a certificate a moment after it obtained it. logs
// tells more when it never does.
func servedChain(t *testing.T, addr, serverName string, roots *x509.CertPool, logs func() string) []*x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
			ServerName: serverName,
			RootCAs:    roots,
			NextProtos: []string{"h2", "http/1.1"},
		})
		if err == nil {
			state := conn.ConnectionState()
			conn.Close()
			if state.NegotiatedProtocol != "h2" {
				t.Fatalf("%s negotiated %q, want h2", addr, state.NegotiatedProtocol)
			}
			if len(state.PeerCertificates) < 2 {
				t.Fatalf("%s sends %d certificates, want the leaf and an intermediate", addr, len(state.PeerCertificates))
			}
			return state.PeerCertificates
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate for %s on %s that the CA's root verifies: %v\n%s", serverName, addr, err, logs())
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}

// spkiFlag has Chromium trust the certificates whose chain, as the server
// sends it, holds the public key of intermediate:
// --ignore-certificate-errors-spki-list checks the sent chain, which ends
// at the intermediate, not at the root.
func spkiFlag(intermediate *x509.Certificate) chromedp.ExecAllocatorOption {
	spki := sha256.Sum256(intermediate.RawSubjectPublicKeyInfo)
	return chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:]))
}

// testProcess is a program that runs beside the test's Caddy, its output
// kept for the test to wait on and to show when the test fails. It stops
// when the test ends.
type testProcess struct {
	name    string
	done    chan struct{}
	mu      sync.Mutex
	out     strings.Builder
	changed chan struct{} // closed, and replaced, at each line of output
}

// startTestProcess starts cmd; its output (stdout and stderr) is kept.
func startTestProcess(t *testing.T, cmd *exec.Cmd) *testProcess {
	t.Helper()
	p := &testProcess{name: filepath.Base(cmd.Path), done: make(chan struct{}), changed: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			if p.out.Len() < 1<<20 {
				p.out.WriteString(sc.Text() + "\n")
			}
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s's output:\n%s", p.name, p.log())
		}
	})
	return p
}

// log is the output so far.
func (p *testProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// awaitLine waits until a line of the output holds part, and returns that
// line. It waits a minute at most: the first order of a new ACME account
// takes a few seconds.
func (p *testProcess) awaitLine(t *testing.T, part string) string {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		p.mu.Lock()
		out, changed := p.out.String(), p.changed
		p.mu.Unlock()
		for line := range strings.Lines(out) {
			if strings.Contains(line, part) {
				return strings.TrimSpace(line)
			}
		}
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("%s exited before it logged %q:\n%s", p.name, part, out)
		case <-deadline:
			t.Fatalf("%s did not log %q within a minute:\n%s", p.name, part, out)
		}
	}
}

// TestBrowserLocalHTTPSExample runs examples/https/local.Caddyfile with its
// global options (its admin address and grace period give way to the test
// Caddy's) and its site on a free port: Caddy's local CA, in the example's
// storage, issues the certificate, and Chromium, trusting that CA, runs
// the chat over HTTP/2.
func TestBrowserLocalHTTPSExample(t *testing.T) {
	chromium := browserChromium(t)
	storage := t.TempDir()
	t.Setenv("COMET_HTTPS_STORAGE", storage)
	caddyfile, err := os.ReadFile(filepath.Join(repoRoot, "examples", "https", "local.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	chat, err := filepath.Abs(filepath.Join(repoRoot, "examples", "chat"))
	if err != nil {
		t.Fatal(err)
	}
	globals, site, ok := strings.Cut(string(caddyfile), "\n}\n")
	_, globals, ok2 := strings.Cut(globals, "\n{\n")
	if !ok || !ok2 {
		t.Fatal("examples/https/local.Caddyfile has no global options block")
	}
	var options strings.Builder
	for line := range strings.Lines(globals + "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "admin" || f[0] == "grace_period") {
			continue
		}
		options.WriteString(line)
	}
	port := freeport.Get(t)
	for old, repl := range map[string]string{
		"https://localhost:4443 {": fmt.Sprintf("https://localhost:%d {", port),
		"root * examples/chat":     fmt.Sprintf("root * %q", chat),
	} {
		if !strings.Contains(site, old) {
			t.Fatalf("examples/https/local.Caddyfile no longer has %q; update this test", old)
		}
		site = strings.ReplaceAll(site, old, repl)
	}
	startCaddyWith(t, options.String(), site)
	if t.Failed() {
		t.FailNow()
	}
	// Unload the site before the storage directory goes (cleanups run
	// last first).
	t.Cleanup(func() {
		if err := loadCaddyfile(""); err != nil {
			t.Errorf("unloading the site: %v", err)
		}
	})

	// No redirect server on http_port (port 80 outside the tests).
	if c, err := net.DialTimeout("tcp", sitePorts[0], time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s, the http_port: the example must not bind one", sitePorts[0])
	}
	// The root is where the docs say, and the site's certificate chains
	// to it.
	root, err := os.ReadFile(filepath.Join(storage, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("the local CA's root: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		t.Fatalf("the local CA's root is not PEM: %q", root)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	chain := servedChain(t, addr, "localhost", roots, func() string { return "" })

	tab := openHTTPSTab(t, browserTab(t, chromium, spkiFlag(chain[1])), fmt.Sprintf("https://localhost:%d/", port))
	eventuallyMetric(t, `caddy_comet_held_reads{hub="default"}`, 1)
	content := fmt.Sprint("alice\thello over h2 ", time.Now().UnixNano())
	hub := &httpsClient{t: t, client: trustingClient(addr, roots)}
	hub.post(fmt.Sprintf("https://localhost:%d/comet/channels/chat.json", port), url.Values{"content": {content}}, http.StatusOK, 1)
	tab.page.waitFor("the message in the chat's log", fmt.Sprintf(
		`[].some.call(document.querySelectorAll('#log li'), function (li) { return li.textContent.indexOf(%q) >= 0; })`,
		strings.Replace(content, "\t", "", 1)))
	tab.checkHTTP2("sse", 1)
}
