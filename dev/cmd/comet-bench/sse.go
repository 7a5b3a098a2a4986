package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// sseEvent is one event of a text/event-stream, as an EventSource would
// dispatch it.
type sseEvent struct {
	// ID is the stream's last event id once this event is dispatched: its
	// own id field, or the one an earlier event set.
	ID string
	// Type is the event field; empty means "message".
	Type string
	// Data is the data lines joined by "\n".
	Data []byte
}

// sseReader reads the events of a text/event-stream (the HTML standard's
// "Interpreting an event stream"): lines of "field: value", an event ending
// at a blank line, comment lines (":") skipped. Lines may end in LF or
// CRLF; Nchan and comet write LF, and a lone CR is not handled.
type sseReader struct {
	br *bufio.Reader
	// lastID persists across events, as the standard's last event ID
	// buffer does.
	lastID string
	// data and typ build the event being read.
	data bytes.Buffer
	typ  string
	// Comments counts comment lines (heartbeats).
	Comments int
}

// maxSSELine bounds one line, so a server that never ends a line cannot make
// the tool grow without bound.
const maxSSELine = 16 << 20

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, 4096)}
}

// errSSELineTooLong is a line over maxSSELine.
var errSSELineTooLong = errors.New("event-stream line too long")

// next returns the next event with data. Events without data lines are not
// dispatched (as in a browser), but an id they carry is kept. At the end of
// the stream it returns io.EOF (or io.ErrUnexpectedEOF inside an event).
func (s *sseReader) next() (sseEvent, error) {
	for {
		line, err := s.line()
		if err != nil {
			if errors.Is(err, io.EOF) && (s.data.Len() > 0 || s.typ != "") {
				err = io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if s.data.Len() == 0 {
				s.typ = ""
				continue
			}
			data := bytes.TrimSuffix(s.data.Bytes(), []byte("\n"))
			ev := sseEvent{ID: s.lastID, Type: s.typ, Data: append([]byte(nil), data...)}
			s.data.Reset()
			s.typ = ""
			return ev, nil
		}
		if line[0] == ':' {
			s.Comments++
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			s.data.Write(value)
			s.data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				s.lastID = string(value)
			}
		case "event":
			s.typ = string(value)
		}
		// retry and unknown fields: ignored, as the standard says (the
		// readers back off on their own schedule).
	}
}

// line reads one line without its line ending.
func (s *sseReader) line() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(long) > maxSSELine {
				return nil, fmt.Errorf("%w (over %d bytes)", errSSELineTooLong, maxSSELine)
			}
			line, err = s.br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if errors.Is(err, io.EOF) && len(line) > 0 {
		return nil, io.ErrUnexpectedEOF // a line cut off
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
