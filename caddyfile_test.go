package comet

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// canonicalJSON re-encodes a JSON document with sorted keys and the given
// indent.
func canonicalJSON(t *testing.T, doc []byte, indent string) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", doc, err)
	}
	out, err := json.MarshalIndent(v, "", indent)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// siteWith is a formatted Caddyfile site whose only directive is the comet
// block given, one subdirective per line.
func siteWith(lines ...string) string {
	if len(lines) == 0 {
		return ":4080 {\n\tcomet\n}\n"
	}
	return ":4080 {\n\tcomet {\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}\n}\n"
}

// indentJSON indents doc as caddytest does, keeping its key order: Caddy
// writes structs (a route: match before handle) in field order and modules
// (handlers) with sorted keys.
func indentJSON(t *testing.T, doc string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(doc), "", "\t"); err != nil {
		t.Fatalf("indenting %s: %v", doc, err)
	}
	return buf.String()
}

// expectedAdapt is the adapter's output for a site on :4080 with the
// handler handlerJSON on its only route.
func expectedAdapt(t *testing.T, handlerJSON string) string {
	t.Helper()
	return indentJSON(t, `{"apps":{"http":{"servers":{"srv0":{"listen":[":4080"],"routes":[{"handle":[`+
		canonicalJSON(t, []byte(handlerJSON), "")+`]}]}}}}}`)
}

func TestCaddyfileAdapt(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		handler string
	}{
		{"no block", nil, `{"handler":"comet"}`},
		{"hub", []string{"hub chat"}, `{"handler":"comet","hub":"chat"}`},
		{"http_timeout duration", []string{"http_timeout 30s"}, `{"handler":"comet","http_timeout":30000000000}`},
		{"http_timeout bare seconds", []string{"http_timeout 45"}, `{"handler":"comet","http_timeout":45000000000}`},
		{"http_timeout minutes", []string{"http_timeout 1m30s"}, `{"handler":"comet","http_timeout":90000000000}`},
		{"session_timeout", []string{"session_timeout 60s"}, `{"handler":"comet","session_timeout":60000000000}`},
		{"session_timeout bare seconds", []string{"session_timeout 120"}, `{"handler":"comet","session_timeout":120000000000}`},
		{"inactive_channel_timeout", []string{"inactive_channel_timeout 90s"}, `{"handler":"comet","inactive_channel_timeout":90000000000}`},
		// 0 turns expiry off, so it must survive into the JSON rather
		// than read as "not set".
		{"inactive_channel_timeout 0", []string{"inactive_channel_timeout 0"}, `{"handler":"comet","inactive_channel_timeout":0}`},
		{"inactive_channel_timeout 0s", []string{"inactive_channel_timeout 0s"}, `{"handler":"comet","inactive_channel_timeout":0}`},
		{"messages_per_channel", []string{"messages_per_channel 100"}, `{"handler":"comet","messages_per_channel":100}`},
		{"messages_per_channel 1", []string{"messages_per_channel 1"}, `{"handler":"comet","messages_per_channel":1}`},
		{"quote_json", []string{"quote_json"}, `{"handler":"comet","quote_json":true}`},
		{"enable_status", []string{"enable_status"}, `{"handler":"comet","enable_status":true}`},
		{"max_message_size KiB", []string{"max_message_size 64KiB"}, `{"handler":"comet","max_message_size":65536}`},
		{"max_message_size MB", []string{"max_message_size 1MB"}, `{"handler":"comet","max_message_size":1000000}`},
		{"max_message_size bytes", []string{"max_message_size 1"}, `{"handler":"comet","max_message_size":1}`},
		{"max_channels_per_read", []string{"max_channels_per_read 64"}, `{"handler":"comet","max_channels_per_read":64}`},
		// 0 means "no limit" and must be kept apart from "not set".
		{"max_held_connections 0", []string{"max_held_connections 0"}, `{"handler":"comet","max_held_connections":0}`},
		{"max_held_connections", []string{"max_held_connections 10000"}, `{"handler":"comet","max_held_connections":10000}`},
		{"max_held_per_ip 0", []string{"max_held_per_ip 0"}, `{"handler":"comet","max_held_per_ip":0}`},
		{"max_held_per_ip", []string{"max_held_per_ip 20"}, `{"handler":"comet","max_held_per_ip":20}`},
		{"ipv6_prefix_per_ip", []string{"ipv6_prefix_per_ip 56"}, `{"handler":"comet","ipv6_prefix_per_ip":56}`},
		{"ipv6_prefix_per_ip 1", []string{"ipv6_prefix_per_ip 1"}, `{"handler":"comet","ipv6_prefix_per_ip":1}`},
		{"ipv6_prefix_per_ip 128", []string{"ipv6_prefix_per_ip 128"}, `{"handler":"comet","ipv6_prefix_per_ip":128}`},
		{"max_channels 0", []string{"max_channels 0"}, `{"handler":"comet","max_channels":0}`},
		{"max_channels", []string{"max_channels 5000"}, `{"handler":"comet","max_channels":5000}`},
		{"max_clients 0", []string{"max_clients 0"}, `{"handler":"comet","max_clients":0}`},
		{"max_clients", []string{"max_clients 7000"}, `{"handler":"comet","max_clients":7000}`},
		{"max_retained_messages", []string{"max_retained_messages 500"}, `{"handler":"comet","max_retained_messages":500}`},
		{"max_reply_size", []string{"max_reply_size 2MiB"}, `{"handler":"comet","max_reply_size":2097152}`},
		{"idempotency_window", []string{"idempotency_window 10m"}, `{"handler":"comet","idempotency_window":600000000000}`},
		{"idempotency_window seconds", []string{"idempotency_window 90"}, `{"handler":"comet","idempotency_window":90000000000}`},
		{"max_idempotency_keys", []string{"max_idempotency_keys 50"}, `{"handler":"comet","max_idempotency_keys":50}`},
		{"sse_heartbeat", []string{"sse_heartbeat 15s"}, `{"handler":"comet","sse_heartbeat":15000000000}`},
		{"allow one", []string{"allow subscribe"}, `{"handler":"comet","allow":["subscribe"]}`},
		{"allow private", []string{"allow publish manage status"}, `{"handler":"comet","allow":["publish","manage","status"]}`},
		{"allow all", []string{"allow subscribe publish manage status"}, `{"handler":"comet","allow":["subscribe","publish","manage","status"]}`},
		{"store memory", []string{"store memory"}, `{"handler":"comet","store":{"store":"memory"}}`},
		{"allow_cross_site one", []string{"allow_cross_site publish"}, `{"handler":"comet","allow_cross_site":["publish"]}`},
		{"allow_cross_site all", []string{"allow_cross_site publish manage status"}, `{"handler":"comet","allow_cross_site":["publish","manage","status"]}`},
		{"everything", []string{
			"hub default",
			"http_timeout 30s",
			"session_timeout 60s",
			"inactive_channel_timeout 90s",
			"messages_per_channel 100",
			"quote_json",
			"enable_status",
			"max_message_size 64KiB",
			"max_channels_per_read 64",
			"max_held_connections 0",
			"max_held_per_ip 0",
			"ipv6_prefix_per_ip 64",
			"max_channels 100000",
			"max_clients 100000",
			"max_retained_messages 1000",
			"max_reply_size 1MiB",
			"idempotency_window 5m",
			"max_idempotency_keys 10000",
			"sse_heartbeat 20s",
			"allow subscribe publish manage status",
			"allow_cross_site publish",
			"store memory",
		}, `{"handler":"comet","hub":"default","http_timeout":30000000000,"session_timeout":60000000000,
			"inactive_channel_timeout":90000000000,"messages_per_channel":100,"quote_json":true,"enable_status":true,
			"sse_heartbeat":20000000000,
			"max_message_size":65536,"max_channels_per_read":64,"max_held_connections":0,"max_held_per_ip":0,
			"ipv6_prefix_per_ip":64,"max_channels":100000,"max_clients":100000,"max_retained_messages":1000,"max_reply_size":1048576,
			"idempotency_window":300000000000,"max_idempotency_keys":10000,
			"allow":["subscribe","publish","manage","status"],"allow_cross_site":["publish"],"store":{"store":"memory"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caddytest.AssertAdapt(t, siteWith(tt.lines...), "caddyfile", expectedAdapt(t, tt.handler))
		})
	}
}

// What `caddy adapt` writes, `caddy run` accepts: the adapted JSON of every
// subdirective provisions.
func TestCaddyfileAdaptedConfigProvisions(t *testing.T) {
	site := siteWith(
		"hub everything",
		"http_timeout 45",
		"session_timeout 60s",
		"inactive_channel_timeout 0",
		"messages_per_channel 100",
		"quote_json",
		"enable_status",
		"max_message_size 1MB",
		"max_channels_per_read 64",
		"max_held_connections 0",
		"max_held_per_ip 4",
		"ipv6_prefix_per_ip 56",
		"max_channels 0",
		"max_clients 10",
		"max_retained_messages 100",
		"max_reply_size 8MiB",
		"idempotency_window 1m",
		"max_idempotency_keys 100",
		"sse_heartbeat 5",
		"allow subscribe publish manage status",
		"allow_cross_site publish manage status",
		"store memory",
	)
	if err := validateCaddyfile(t, strings.Replace(site, ":4080", ":0", 1)); err != nil {
		t.Fatal(err)
	}
}

// adaptedHandler adapts a Caddyfile and returns the JSON of the first
// handler of the first route of srv0.
func adaptedHandler(t *testing.T, caddyfileText string) json.RawMessage {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	routes := cfg.Apps.HTTP.Servers["srv0"].Routes
	if len(routes) == 0 || len(routes[0].Handle) == 0 {
		t.Fatalf("no handler in %s", out)
	}
	return routes[0].Handle[0]
}

// The adapted JSON is what the handler reads and writes: decoding it into a
// Handler and encoding that again gives the same fields back.
func TestCaddyfileJSONRoundTrip(t *testing.T) {
	for _, lines := range [][]string{
		nil,
		{"inactive_channel_timeout 0", "max_held_connections 0"},
		{
			"hub default",
			"http_timeout 45",
			"session_timeout 1m",
			"inactive_channel_timeout 0",
			"messages_per_channel 100",
			"quote_json",
			"enable_status",
			"max_message_size 1MB",
			"max_channels_per_read 64",
			"max_held_connections 0",
			"max_held_per_ip 4",
			"ipv6_prefix_per_ip 128",
			"max_channels 0",
			"max_clients 10",
			"max_retained_messages 100",
			"max_reply_size 8MiB",
			"idempotency_window 1m",
			"max_idempotency_keys 100",
			"sse_heartbeat 15s",
			"allow subscribe publish",
			"allow_cross_site publish",
			"store memory",
		},
	} {
		raw := adaptedHandler(t, siteWith(lines...))
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		if string(fields["handler"]) != `"comet"` {
			t.Fatalf("handler name in %s", raw)
		}
		delete(fields, "handler") // the module's name, not a field
		want, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}

		var h Handler
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatalf("decoding %s into Handler: %v", raw, err)
		}
		got, err := json.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := canonicalJSON(t, got, ""), canonicalJSON(t, want, ""); g != w {
			t.Errorf("%v: round trip\n got %s\nwant %s", lines, g, w)
		}
	}
}

// A site needs no order line: comet answers its API paths before respond
// answers everything, whichever comes first in the site block.
func TestCaddyfileOrderBeforeRespond(t *testing.T) {
	for _, site := range []string{
		":4080 {\n\trespond \"fallback\"\n\tcomet\n}\n",
		":4080 {\n\tcomet\n\trespond \"fallback\"\n}\n",
	} {
		raw := adaptedHandler(t, site)
		var h struct {
			Handler string `json:"handler"`
		}
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatal(err)
		}
		if h.Handler != "comet" {
			t.Errorf("site\n%s\nfirst handler is %s, want comet", site, raw)
		}
	}
	// The whole route, so that a change in how the two are grouped shows.
	caddytest.AssertAdapt(t, ":4080 {\n\trespond \"fallback\"\n\tcomet\n}\n", "caddyfile", indentJSON(t,
		`{"apps":{"http":{"servers":{"srv0":{"listen":[":4080"],"routes":[{"handle":[
			{"handler":"comet"},
			{"body":"fallback","handler":"static_response"}]}]}}}}}`))
}

func TestCaddyfileMatcher(t *testing.T) {
	caddytest.AssertAdapt(t, ":4080 {\n\tcomet /comet/* {\n\t\tallow subscribe\n\t}\n}\n", "caddyfile", indentJSON(t,
		`{"apps":{"http":{"servers":{"srv0":{"listen":[":4080"],"routes":[{"match":[{"path":["/comet/*"]}],"handle":[
			{"allow":["subscribe"],"handler":"comet"}]}]}}}}}`))
}

func TestCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		line  int    // the line the error must name
		want  string // part of the message
	}{
		{"unknown subdirective", "comet {\n\thub a\n\tbogus 1\n}", 3, `unknown subdirective "bogus"`},
		{"argument on the directive", "comet extra {\n}", 1, "wrong argument count"},
		{"hub without name", "comet {\n\thub\n}", 2, "wrong argument count"},
		{"hub with two names", "comet {\n\thub a b\n}", 2, "wrong argument count"},
		// Without the check, the second name would be read as the next
		// subdirective and quietly turn quote_json on.
		{"hub followed by a subdirective name", "comet {\n\thub a quote_json\n}", 2, "wrong argument count"},
		{"bad duration", "comet {\n\thttp_timeout soon\n}", 2, `http_timeout: invalid duration "soon"`},
		{"bad duration unit", "comet {\n\n\tsession_timeout 5x\n}", 3, `session_timeout: invalid duration "5x"`},
		{"negative bare seconds", "comet {\n\tsession_timeout -5\n}", 2, "session_timeout: must not be negative"},
		{"negative duration", "comet {\n\tinactive_channel_timeout -5s\n}", 2, "inactive_channel_timeout: must not be negative"},
		{"bare seconds overflow", "comet {\n\thttp_timeout 9999999999999\n}", 2, "http_timeout"},
		{"duration without value", "comet {\n\thttp_timeout\n}", 2, "wrong argument count"},
		{"duration with two values", "comet {\n\thttp_timeout 30s 40s\n}", 2, "wrong argument count"},
		{"messages_per_channel 0", "comet {\n\tmessages_per_channel 0\n}", 2, "messages_per_channel: want an integer of at least 1"},
		{"messages_per_channel not a number", "comet {\n\tmessages_per_channel many\n}", 2, "messages_per_channel: want an integer"},
		{"messages_per_channel negative", "comet {\n\tmessages_per_channel -1\n}", 2, "messages_per_channel: want an integer of at least 1"},
		{"messages_per_channel extra", "comet {\n\tmessages_per_channel 1 2\n}", 2, "wrong argument count"},
		{"max_channels_per_read 0", "comet {\n\tmax_channels_per_read 0\n}", 2, "max_channels_per_read: want an integer of at least 1"},
		{"max_held_connections negative", "comet {\n\tmax_held_connections -1\n}", 2, "max_held_connections: want an integer of at least 0"},
		{"max_held_per_ip negative", "comet {\n\tmax_held_per_ip -1\n}", 2, "max_held_per_ip: want an integer of at least 0"},
		{"ipv6_prefix_per_ip 0", "comet {\n\tipv6_prefix_per_ip 0\n}", 2, `ipv6_prefix_per_ip: want a prefix length from 1 to 128, got "0"`},
		{"ipv6_prefix_per_ip 129", "comet {\n\tipv6_prefix_per_ip 129\n}", 2, `ipv6_prefix_per_ip: want a prefix length from 1 to 128, got "129"`},
		{"ipv6_prefix_per_ip not a number", "comet {\n\tipv6_prefix_per_ip /64\n}", 2, `ipv6_prefix_per_ip: want a prefix length from 1 to 128, got "/64"`},
		{"ipv6_prefix_per_ip negative", "comet {\n\tipv6_prefix_per_ip -64\n}", 2, `ipv6_prefix_per_ip: want a prefix length from 1 to 128, got "-64"`},
		{"ipv6_prefix_per_ip without value", "comet {\n\tipv6_prefix_per_ip\n}", 2, "wrong argument count"},
		{"ipv6_prefix_per_ip with two values", "comet {\n\tipv6_prefix_per_ip 64 56\n}", 2, "wrong argument count"},
		{"max_channels negative", "comet {\n\tmax_channels -1\n}", 2, "max_channels: want an integer of at least 0"},
		{"max_clients negative", "comet {\n\tmax_clients -1\n}", 2, "max_clients: want an integer of at least 0"},
		{"max_retained_messages 0", "comet {\n\tmax_retained_messages 0\n}", 2, "max_retained_messages: want an integer of at least 1"},
		{"idempotency_window 0", "comet {\n\tidempotency_window 0\n}", 2, "idempotency_window: must be more than 0"},
		{"idempotency_window negative", "comet {\n\tidempotency_window -1s\n}", 2, "idempotency_window: must not be negative"},
		{"sse_heartbeat 0", "comet {\n\tsse_heartbeat 0\n}", 2, "sse_heartbeat: must be more than 0"},
		{"sse_heartbeat negative", "comet {\n\tsse_heartbeat -1s\n}", 2, "sse_heartbeat: must not be negative"},
		{"max_idempotency_keys 0", "comet {\n\tmax_idempotency_keys 0\n}", 2, "max_idempotency_keys: want an integer of at least 1"},
		{"max_reply_size 0", "comet {\n\tmax_reply_size 0\n}", 2, `max_reply_size: invalid size "0"`},
		{"max_reply_size over 2GiB", "comet {\n\tmax_reply_size 3GiB\n}", 2, `max_reply_size: invalid size "3GiB"`},
		{"max_reply_size without value", "comet {\n\tmax_reply_size\n}", 2, "wrong argument count"},
		{"bad size", "comet {\n\tmax_message_size lots\n}", 2, `max_message_size: invalid size "lots"`},
		{"size zero", "comet {\n\tmax_message_size 0\n}", 2, `max_message_size: invalid size "0"`},
		{"negative size", "comet {\n\tmax_message_size -1KB\n}", 2, `max_message_size: invalid size "-1KB"`},
		{"size over int64", "comet {\n\tmax_message_size 10EB\n}", 2, `max_message_size: invalid size "10EB"`},
		{"size without value", "comet {\n\tmax_message_size\n}", 2, "wrong argument count"},
		{"size with two values", "comet {\n\tmax_message_size 1KB 2KB\n}", 2, "wrong argument count"},
		{"quote_json with argument", "comet {\n\tquote_json yes\n}", 2, "wrong argument count"},
		{"enable_status with argument", "comet {\n\tenable_status on\n}", 2, "wrong argument count"},
		{"unknown allow op", "comet {\n\tallow subscribe read\n}", 2, `allow: unknown operation "read"`},
		{"allow nothing", "comet {\n\tallow\n}", 2, "wrong argument count"},
		{"allow_cross_site nothing", "comet {\n\tallow_cross_site\n}", 2, "wrong argument count"},
		{"allow_cross_site subscribe", "comet {\n\tallow_cross_site publish subscribe\n}", 2, "allow_cross_site: subscribe is always served to other sites"},
		{"allow_cross_site unknown op", "comet {\n\tallow_cross_site publish read\n}", 2, `allow_cross_site: unknown operation "read" (want publish, manage, status)`},
		{"store without module", "comet {\n\tstore\n}", 2, "wrong argument count"},
		{"unknown store", "comet {\n\tstore floppy\n}", 2, "comet.stores.floppy"},
		{"memory store argument", "comet {\n\tstore memory big\n}", 2, "wrong argument count"},
		{"memory store options", "comet {\n\tstore memory {\n\t\tsize 1\n\t}\n}", 3, "store memory takes no options"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("no error for\n%s", tt.input)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if at := "Testfile:" + strconv.Itoa(tt.line); !strings.Contains(err.Error(), at) {
				t.Errorf("error %q does not name line %s", err, at)
			}
		})
	}
}

// Through the adapter, the error names the Caddyfile and the line.
func TestCaddyfileAdaptErrorNamesLine(t *testing.T) {
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":4080 {\n\tcomet {\n\t\thub a\n\t\thttp_timeout soon\n\t}\n}\n"), nil)
	if err == nil {
		t.Fatal("no error for a bad duration")
	}
	if !strings.Contains(err.Error(), "Caddyfile:4") || !strings.Contains(err.Error(), "http_timeout") {
		t.Errorf("error %q does not name http_timeout at Caddyfile:4", err)
	}
}
