package wire

import (
	"net/http"
	"strings"
	"testing"
)

// discardWriter is the least a ResponseWriter can cost, so the benchmark
// measures the encoding and not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// readBody is a read reply with five messages, as a catch-up read returns.
func readBody() []byte {
	msg := `{"content":"` + strings.Repeat("x", 80) + `","id":179565621388246,"ts":1795656213}`
	msgs := `{"news":[` + strings.Repeat(msg+",", 4) + msg + `]}`
	return NewObject(nil).Int("since", 0).Raw("messages", []byte(msgs)).
		Int("last_id", 179565621388246).Int("return_code", 1).String("error_message", "").Bytes()
}

func BenchmarkWrite(b *testing.B) {
	body := readBody()
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"json", Options{Format: JSON}},
		{"jsonp", Options{Format: JSONP, Callback: "_JSONP_12"}},
		{"quoted", Options{Format: JSON, QuoteJSON: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := Write(w, http.StatusOK, bc.opts, body, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkObject(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = NewObject(buf).Int("message_id", 179565621388246).Int("return_code", 1).String("error_message", "").Bytes()
	}
}
