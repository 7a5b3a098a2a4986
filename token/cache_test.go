package token

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// The cache serves a token until it expires, keeps the tokens in use and
// stays within its bounds however many tokens verify.
func TestJWTCache(t *testing.T) {
	now := testEpoch
	c := newCache(100, 1<<20)
	g := &Grant{Subscribe: []string{"news"}}
	c.put("kept", g, now.Add(time.Hour), now)
	for i := range 1000 {
		c.put(fmt.Sprint("token ", i), g, now.Add(time.Hour), now)
		// A token in use is found again and again: it stays.
		if c.get("kept", now) != g {
			t.Fatalf("the token in use was dropped after %d others", i)
		}
		if n, _ := c.size(); n > 100 {
			t.Fatalf("%d tokens cached, want at most 100", n)
		}
	}
	if c.get("token 0", now) != nil {
		t.Error("the first of 1000 tokens is still cached in a cache of 100")
	}
	if c.get("token 999", now) != g {
		t.Error("the latest token is not cached")
	}
	if c.get("kept", now.Add(time.Hour)) != nil {
		t.Error("a token is served at its expiry")
	}

	// The byte bound: large tokens push each other out.
	c = newCache(1000, 64<<10)
	big := strings.Repeat("t", 8<<10)
	for i := range 100 {
		c.put(fmt.Sprint(i, big), g, now.Add(time.Hour), now)
		if _, bytes := c.size(); bytes > 64<<10 {
			t.Fatalf("%d bytes cached, want at most %d", bytes, 64<<10)
		}
	}
	// An expired token is not cached at all.
	c.put("late", g, now, now)
	if c.get("late", now.Add(-time.Second)) != nil {
		t.Error("an expired token was cached")
	}
}

// A cached token is a copy: the cache does not pin the query string (and
// the request) it came in, which may be much larger than the token.
func TestJWTCacheKeepsOnlyTheToken(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	token := hsToken(t, Grant{Subscribe: []string{"news"}})
	r := httptest.NewRequest(http.MethodGet, "/channels/news.json?since=0&token="+token+"&cb=_JSONP_x", nil)
	if _, err := v.Check(r, "subscribe", "news"); err != nil {
		t.Fatal(err)
	}
	if n, _ := v.cache.size(); n != 1 {
		t.Fatalf("%d cached, want 1", n)
	}
	query := r.URL.RawQuery
	start := uintptr(unsafe.Pointer(unsafe.StringData(query)))
	for k := range v.cache.cur {
		if k != token {
			t.Fatalf("cache key %q, want the token", k)
		}
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k))); p >= start && p < start+uintptr(len(query)) {
			t.Fatal("the cache key is a slice of the request's query")
		}
	}
}
