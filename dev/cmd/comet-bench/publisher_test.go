package main

import (
	"strings"
	"testing"
	"time"
)

func TestMessageContentRoundTrip(t *testing.T) {
	sent := time.Unix(1700000000, 5)
	for _, size := range []int{0, 10, 100, 1000} {
		c := messageContent("0a1b2c3d", 42, sent, size)
		if size > 60 && len(c) != size {
			t.Errorf("size %d: content is %d bytes", size, len(c))
		}
		run, seq, ok := parseContent(c)
		if !ok || run != "0a1b2c3d" || seq != 42 {
			t.Errorf("size %d: parseContent(%q) = %q, %d, %v", size, c, run, seq, ok)
		}
		if !strings.Contains(c, " t=1700000000000000005 ") {
			t.Errorf("content %q does not carry the send time", c)
		}
	}
}

func TestParseContentRejectsOthers(t *testing.T) {
	for _, c := range []string{
		"", "hello", "comet-bench marker run=0a1b2c3d", "comet-bench run=0a1b", "comet-bench run=0a1b2c3d",
		"comet-bench run=0a1b2c3d seq=", "comet-bench run=0a1b2c3d seq=-1", "comet-bench run=0a1b2c3d seq=x1",
	} {
		if _, _, ok := parseContent(c); ok {
			t.Errorf("parseContent(%q) accepted it", c)
		}
	}
}

func TestRunClockStartsAboveZero(t *testing.T) {
	if n := newRunClock().now(); n <= 0 {
		t.Errorf("a new run clock reads %d; 0 means not sent", n)
	}
}

func TestRunIDLength(t *testing.T) {
	if id := newRunID(); len(id) != runIDLen {
		t.Errorf("run id %q is not %d characters", id, runIDLen)
	}
}
