package token

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/token/tokentest"
)

// deepCall calls f under n frames of some 280 bytes each, as a request is
// served under Caddy's and net/http's frames.
//
//go:noinline
func deepCall(n int, f func()) byte {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		f()
		return pad[3]
	}
	return deepCall(n-1, f) + pad[n%256]
}

// A read whose token is verified (not found in the cache) is held with no
// more stack than one that needs no token: verifying takes some 4 KiB of
// stack, which under the ~5 KiB of frames above a handler would double a
// held read's goroutine stack, for as long as the read is held.
func TestJWTVerifyKeepsTheStackSmall(t *testing.T) {
	rsaKey, _ := tokentest.Keys(t)
	v := newTestVerifier(t, Options{PublicKey: &rsaKey.PublicKey}, nil)
	v.cache = newCache(0, 0) // every token verified
	token := sign(t, jwt.SigningMethodRS256, rsaKey, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Comet:            Grant{Subscribe: []string{"news"}},
	})
	const goroutines, depth = 500, 18 // 18 frames: some 5 KiB
	stackPerHeldRead := func(verify bool) uint64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var held, done sync.WaitGroup
		release := make(chan struct{})
		for range goroutines {
			held.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				deepCall(depth, func() {
					if verify {
						if _, err := v.Verify(context.Background(), token); err != nil {
							panic(err)
						}
					}
					deepCall(2, func() { held.Done(); <-release })
				})
			}()
		}
		held.Wait()
		runtime.GC() // shrinks what it can
		runtime.ReadMemStats(&after)
		close(release)
		done.Wait()
		return (after.StackInuse - before.StackInuse) / goroutines
	}
	without, with := stackPerHeldRead(false), stackPerHeldRead(true)
	t.Logf("stack per held read: %d bytes without a token, %d verifying one", without, with)
	if with > without+without/4 {
		t.Fatalf("a held read takes %d bytes of stack after verifying its token, %d without", with, without)
	}
}

// A panic while verifying, on a worker goroutine where Caddy cannot
// recover it, refuses the token instead of ending the process.
func TestJWTVerifyPanicRefuses(t *testing.T) {
	v := &Verifier{logger: zap.NewNop(), cache: newCache(1, 1), now: time.Now, workers: newWorkers()} // no parser: verifying panics
	t.Cleanup(v.Close)
	g, err := v.verifyOffStack(context.Background(), "a.b.c", time.Now())
	if g != nil || !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, %v; want the token refused as malformed", g, err)
	}
	// The workers are still there: given what verifying needs, the same
	// verifier's workers verify.
	ok := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	v.alg, v.key, v.parser, v.claims, v.now = ok.alg, ok.key, ok.parser, ok.claims, ok.now
	wantRefused(t, "after a panic", checkToken(v, hsToken(t, Grant{Subscribe: []string{"news"}}), "subscribe", "news"), nil)
}

// A verifier's workers start with its verifications and are gone once it
// is closed; a verifier closed still verifies, off the caller's goroutine.
func TestVerifierCloseStopsWorkers(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	if n, _ := v.workers.Goroutines(); n != 0 {
		t.Fatalf("%d workers before the first verification, want none", n)
	}
	tok := hsToken(t, Grant{Subscribe: []string{"news"}})
	wantRefused(t, "with its workers", checkToken(v, tok, "subscribe", "news"), nil)
	if n, _ := v.workers.Goroutines(); n != 1 {
		t.Fatalf("%d workers after one verification, want 1", n)
	}
	v.Close() // waits for the workers to end
	if n, _ := v.workers.Goroutines(); n != 0 {
		t.Fatalf("%d workers after Close, want none", n)
	}
	v.cache = newCache(0, 0) // so that the token is verified again
	wantRefused(t, "closed", checkToken(v, tok, "subscribe", "news"), nil)
	v.Close() // twice is fine
	if n, _ := v.workers.Goroutines(); n != 0 {
		t.Fatalf("%d workers after verifying on a closed verifier, want none", n)
	}
}

// A verification waiting for a worker gives up when its request ends: when
// every worker is busy, Verify returns the context's error once the
// context is cancelled, and the workers go on with the others.
func TestVerifyQueuedGivesUpWithItsContext(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	tok := hsToken(t, Grant{Subscribe: []string{"news"}})
	v.cache = newCache(0, 0) // every token verified

	// Keep every worker busy until the test lets them go.
	release := make(chan struct{})
	for range max(runtime.GOMAXPROCS(0), 2) {
		if err := v.workers.Go(context.Background(), func() { <-release }); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, tok)
		result <- err
	}()
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("a verification queued behind busy workers returned %v once its context ended, want %v", err, context.Canceled)
	}

	close(release)
	wantRefused(t, "after the workers are free", checkToken(v, tok, "subscribe", "news"), nil)
}
