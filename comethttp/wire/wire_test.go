package wire

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/internal/jsonstring"
)

func TestSplitFormat(t *testing.T) {
	tests := []struct {
		name   string
		base   string
		format Format
		ok     bool
	}{
		{"channels.json", "channels", JSON, true},
		{"channels.jsonp", "channels", JSONP, true},
		{"a|b.json", "a|b", JSON, true},
		{"a.json.jsonp", "a.json", JSONP, true},
		{"a.jsonp.json", "a.jsonp", JSON, true},
		{".json", "", JSON, true},
		{".jsonp", "", JSONP, true},
		{"channels.xml", "channels.xml", JSON, false},
		{"channels", "channels", JSON, false},
		{"channels.JSON", "channels.JSON", JSON, false},
		{"channels.jsonpp", "channels.jsonpp", JSON, false},
		{"channels.json ", "channels.json ", JSON, false},
		{"", "", JSON, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, format, ok := SplitFormat(tt.name)
			if base != tt.base || format != tt.format || ok != tt.ok {
				t.Errorf("SplitFormat(%q) = %q, %v, %v; want %q, %v, %v", tt.name, base, format, ok, tt.base, tt.format, tt.ok)
			}
		})
	}
}

func TestValidCallback(t *testing.T) {
	longest := CallbackPrefix + strings.Repeat("a", MaxCallbackLength-len(CallbackPrefix))
	tests := []struct {
		name string
		cb   string
		want bool
	}{
		{"default", DefaultCallback, true},
		{"prefix alone", "_JSONP_", true},
		{"digits after prefix", "_JSONP_123", true},
		{"dotted path", "_JSONP_comet.subs.cb1", true},
		{"mixed case and underscores", "_JSONP_Comet_CB_9", true},
		{"128 bytes", longest, true},

		{"129 bytes", longest + "a", false},
		{"empty", "", false},
		{"no prefix", "callback", false},
		{"prefix in the wrong case", "_jsonp_cb", false},
		{"prefix not at the start", "x_JSONP_cb", false},
		{"digit first", "1_JSONP_cb", false},
		{"dot first", "._JSONP_cb", false},
		{"hostile: alert", "alert(1)//", false},
		{"hostile: statement after name", "_JSONP_a;alert(1)", false},
		{"hostile: call inside name", "_JSONP_a(1)", false},
		{"hostile: closing script tag", "_JSONP_</script>", false},
		{"hostile: comment", "_JSONP_a/*", false},
		{"hostile: line comment", "_JSONP_a//", false},
		{"hostile: bracket access", "_JSONP_a['x']", false},
		{"hostile: equals", "_JSONP_a=alert", false},
		{"hostile: newline", "_JSONP_a\nalert(1)", false},
		{"hostile: NUL", "_JSONP_a\x00", false},
		{"hostile: space", "_JSONP_a b", false},
		{"hostile: dollar", "_JSONP_$", false},
		{"hostile: dash", "_JSONP_a-b", false},
		{"unicode letter", "_JSONP_é", false},
		{"unicode line separator", "_JSONP_a\u2028alert(1)", false},
		{"invalid UTF-8", "_JSONP_\xff", false},
		// Letters that look like ASCII but are not (Cyrillic "а").
		{"homoglyph", "_JSONP_\u0430", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidCallback(tt.cb); got != tt.want {
				t.Errorf("ValidCallback(%q) = %v, want %v", tt.cb, got, tt.want)
			}
		})
	}
}

const testBody = `{"return_code":1,"error_message":""}`

func TestWriteFormats(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		wantType string
		wantBody string
	}{
		{
			name:     "json",
			opts:     Options{Format: JSON},
			wantType: "application/json",
			wantBody: testBody,
		},
		{
			name:     "quoted json",
			opts:     Options{Format: JSON, QuoteJSON: true},
			wantType: "application/json",
			wantBody: "/*-secure- " + testBody + " */",
		},
		{
			name:     "json ignores cb",
			opts:     Options{Format: JSON, Callback: "_JSONP_x"},
			wantType: "application/json",
			wantBody: testBody,
		},
		{
			name:     "jsonp default callback",
			opts:     Options{Format: JSONP},
			wantType: "application/javascript; charset=utf-8",
			wantBody: "_JSONP_comet_cb(" + testBody + ");",
		},
		{
			name:     "jsonp named callback",
			opts:     Options{Format: JSONP, Callback: "_JSONP_sub.cb_2"},
			wantType: "application/javascript; charset=utf-8",
			wantBody: "_JSONP_sub.cb_2(" + testBody + ");",
		},
		{
			name:     "jsonp is never quoted",
			opts:     Options{Format: JSONP, QuoteJSON: true},
			wantType: "application/javascript; charset=utf-8",
			wantBody: "_JSONP_comet_cb(" + testBody + ");",
		},
		{
			name:     "jsonp invalid callback",
			opts:     Options{Format: JSONP, Callback: "alert(1)//"},
			wantType: "application/javascript; charset=utf-8",
			wantBody: "/* invalid JSONP callback name */",
		},
		{
			name:     "jsonp hostile callback with prefix",
			opts:     Options{Format: JSONP, Callback: "_JSONP_a;alert(1)"},
			wantType: "application/javascript; charset=utf-8",
			wantBody: "/* invalid JSONP callback name */",
		},
		{
			name:     "jsonp callback that closes the script tag",
			opts:     Options{Format: JSONP, Callback: "_JSONP_</script><script>alert(1)</script>"},
			wantType: "application/javascript; charset=utf-8",
			wantBody: "/* invalid JSONP callback name */",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := Write(rec, http.StatusOK, tt.opts, []byte(testBody), false); err != nil {
				t.Fatal(err)
			}
			res := rec.Result()
			if got := res.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			// No reply may be run as script but through its callback: a
			// sniffing browser would run a quoted .json reply.
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if got, want := res.Header.Get("Content-Length"), strconv.Itoa(len(tt.wantBody)); got != want {
				t.Errorf("Content-Length = %q, want %q", got, want)
			}
		})
	}
}

func TestWriteStatusPassesThrough(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusForbidden, http.StatusMethodNotAllowed,
		http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable} {
		for _, format := range []Format{JSON, JSONP} {
			rec := httptest.NewRecorder()
			if err := Write(rec, status, Options{Format: format}, []byte(testBody), false); err != nil {
				t.Fatal(err)
			}
			if rec.Code != status {
				t.Errorf("format %v: status = %d, want %d", format, rec.Code, status)
			}
		}
	}
}

func TestWriteCacheHeaders(t *testing.T) {
	// A real server, so that the reply carries the Date header Expires is
	// compared with.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		withMessages := r.URL.Query().Has("messages")
		format := JSON
		if r.URL.Query().Has("jsonp") {
			format = JSONP
		}
		if err := Write(w, http.StatusOK, Options{Format: format}, []byte(testBody), withMessages); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()

	get := func(t *testing.T, query string) (*http.Response, time.Time, time.Time) {
		t.Helper()
		before := time.Now()
		res, err := http.Get(srv.URL + "/?" + query)
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		res.Body.Close()
		return res, before, after
	}

	for _, query := range []string{"messages", "messages&jsonp"} {
		t.Run("with messages "+query, func(t *testing.T) {
			res, before, after := get(t, query)
			if got := res.Header.Get("Cache-Control"); got != "private, must-revalidate, proxy-revalidate, max-age=1, s-max-age=1, stale-while-revalidate=1, stale-if-error=86400" {
				t.Errorf("Cache-Control = %q", got)
			}
			expires, err := http.ParseTime(res.Header.Get("Expires"))
			if err != nil {
				t.Fatalf("Expires %q: %v", res.Header.Get("Expires"), err)
			}
			date, err := http.ParseTime(res.Header.Get("Date"))
			if err != nil {
				t.Fatalf("Date %q: %v", res.Header.Get("Date"), err)
			}
			// HTTP dates have one-second resolution: Expires, taken one
			// second after a moment no later than Date, is Date or Date+1s.
			if d := expires.Sub(date); d < 0 || d > time.Second {
				t.Errorf("Expires %v is %v after Date %v, want 0 to 1s", expires, d, date)
			}
			// And against this clock: one second ahead of the request.
			lo := before.Add(time.Second).Truncate(time.Second)
			hi := after.Add(time.Second)
			if expires.Before(lo) || expires.After(hi) {
				t.Errorf("Expires %v outside [%v, %v]", expires, lo, hi)
			}
		})
	}
	for _, query := range []string{"", "jsonp"} {
		t.Run("without messages "+query, func(t *testing.T) {
			res, _, _ := get(t, query)
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := res.Header.Get("Expires"); got != "" {
				t.Errorf("Expires = %q, want none", got)
			}
		})
	}
}

// A JSON-P reply around hostile content must stay one call with one JSON
// argument: nothing in the content may end the string, the call or the
// surrounding <script> element.
func TestWriteJSONPHostileContent(t *testing.T) {
	for _, content := range jsonstring.Hostile {
		body := NewObject(nil).String("content", content).Int("return_code", 1).Bytes()
		rec := httptest.NewRecorder()
		if err := Write(rec, http.StatusOK, Options{Format: JSONP, Callback: "_JSONP_cb"}, body, true); err != nil {
			t.Fatal(err)
		}
		out := rec.Body.String()
		arg, ok := strings.CutPrefix(out, "_JSONP_cb(")
		if !ok {
			t.Fatalf("content %q: body %q does not start with the callback", content, out)
		}
		arg, ok = strings.CutSuffix(arg, ");")
		if !ok {
			t.Fatalf("content %q: body %q does not end the call", content, out)
		}
		var v struct {
			Content string `json:"content"`
		}
		if err := json.Unmarshal([]byte(arg), &v); err != nil {
			t.Fatalf("content %q: argument %q is not JSON: %v", content, arg, err)
		}
		if want := replaceInvalidUTF8(content); v.Content != want {
			t.Errorf("content %q came back as %q, want %q", content, v.Content, want)
		}
		if strings.Contains(strings.ToLower(out), "</script") || strings.Contains(out, "<!--") {
			t.Errorf("content %q: body %q can end the script element", content, out)
		}
	}
}

// The Expires header's date is what time's own formatter writes in
// http.TimeFormat, for any second of years 0 to 9999.
func TestAppendHTTPDate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	times := []time.Time{time.Unix(lo, 0), time.Unix(hi, 0), time.Unix(0, 0), time.Now(), time.Now().In(time.FixedZone("X", -11*3600))}
	for range 100000 {
		times = append(times, time.Unix(lo+rng.Int64N(hi-lo+1), rng.Int64N(1e9)))
	}
	for _, tm := range times {
		if got, want := string(appendHTTPDate(nil, tm)), tm.UTC().Format(http.TimeFormat); got != want {
			t.Fatalf("appendHTTPDate(%v) = %q, want %q", tm, got, want)
		}
	}
}
