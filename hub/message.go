package hub

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/simple-comet/caddy-comet/internal/jsonstring"
)

// Message is one published message. JSON is its encoded form,
// {"content":...,"id":...,"ts":...}, made once when it is published and
// reused in every reply that carries it, in JSON and in JSON-P alike.
type Message struct {
	ID   int64
	JSON []byte
}

// Content decodes the message's content.
func (m Message) Content() string {
	var v struct {
		Content string `json:"content"`
	}
	_ = json.Unmarshal(m.JSON, &v)
	return v.Content
}

// Time decodes the message's timestamp, in Unix seconds.
func (m Message) Time() int64 {
	var v struct {
		TS int64 `json:"ts"`
	}
	_ = json.Unmarshal(m.JSON, &v)
	return v.TS
}

// EncodeContent encodes content as a JSON string that is safe inside HTML and
// JavaScript too, escaped as jsonstring.Append escapes every string of a
// reply: no content can end a <script>, break out of a JSON-P reply or end
// the comment of a quoted JSON one. Content must be valid UTF-8.
func EncodeContent(content string) ([]byte, error) {
	if !utf8.ValidString(content) {
		return nil, ErrInvalidContent
	}
	return jsonstring.Append(make([]byte, 0, len(content)+2), content), nil
}

// AppendMessageJSON appends a message's JSON object to dst, given its content
// encoded by EncodeContent.
func AppendMessageJSON(dst, encodedContent []byte, id, ts int64) []byte {
	dst = append(dst, `{"content":`...)
	dst = append(dst, encodedContent...)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// NewMessage builds a message from content encoded by EncodeContent.
func NewMessage(encodedContent []byte, id, ts int64) Message {
	buf := make([]byte, 0, len(encodedContent)+40)
	return Message{ID: id, JSON: AppendMessageJSON(buf, encodedContent, id, ts)}
}
