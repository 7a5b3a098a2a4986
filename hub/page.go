package hub

// Paging a read: a reply carries at most Config.MaxReplySize bytes. A read
// with more to return than that carries the oldest messages newer than its
// since, in id order across all its channels, as many as fit (and always at
// least one), and its LastID is the id of the last message it carries.
// Every message with an id up to that one, on every channel of the read, is
// in the reply, so since=LastID goes on exactly where it stopped.

// Reply framing, for the budget of a read's messages: what a reply holds
// besides them, at most.
const (
	// replyFraming covers since, last_id, return_code, error_message, the
	// braces, a JSON-P callback of up to 128 bytes and quote_json's wrapper.
	replyFraming = 512
	// maxMessageFraming covers {"content":,"id":,"ts":} and its numbers.
	maxMessageFraming = 64
	// maxEscape is how many bytes a byte of content or id may take in JSON
	// (a control character is \u00XX).
	maxEscape = 6
)

// channelFraming is what channel id takes in a reply's messages object,
// with its quotes, colon, brackets and comma, escaped at worst.
func channelFraming(id string) int { return maxEscape*len(id) + 8 }

// MaxEncodedMessage is the most bytes a message of maxMessageSize bytes of
// content takes in a reply.
func MaxEncodedMessage(maxMessageSize int) int {
	return maxEscape*maxMessageSize + maxMessageFraming
}

// MinReplySize is the smallest max_reply_size that holds one message of
// maxMessageSize bytes in a read of maxChannels channels with the longest
// ids.
func MinReplySize(maxMessageSize, maxChannels int) int {
	return replyFraming + maxChannels*(maxEscape*MaxIDLength+8) + MaxEncodedMessage(maxMessageSize) + 1
}

// messageBudget is how many bytes of message JSON a read of channels may
// carry in a reply of at most maxReplySize bytes; 0 when there is no limit.
func messageBudget(maxReplySize int, channels []string) int {
	if maxReplySize <= 0 {
		return 0
	}
	budget := maxReplySize - replyFraming
	for _, c := range channels {
		budget -= channelFraming(c)
	}
	return max(budget, 1)
}

// cutToPage cuts chans, the messages of a read in id order per channel, to
// the oldest messages across the channels whose JSON, plus a separator
// each, fits maxBytes, keeping at least one. It reports whether it left
// messages out, and then the id of the last message kept; every channel
// keeps exactly its messages up to that id.
func cutToPage(chans []ChannelMessages, maxBytes int) (last int64, cut bool) {
	total := 0
	for i := range chans {
		for j := range chans[i].Messages {
			total += len(chans[i].Messages[j].JSON) + 1
		}
	}
	if total <= maxBytes {
		return 0, false
	}
	// Merge the channels by id, oldest first, until the budget is spent.
	// A read names at most max_channels_per_read channels, so a linear
	// scan for the oldest head is cheap.
	pos := make([]int, len(chans))
	size, taken := 0, 0
	for {
		next := -1
		for i := range chans {
			if pos[i] < len(chans[i].Messages) &&
				(next < 0 || chans[i].Messages[pos[i]].ID < chans[next].Messages[pos[next]].ID) {
				next = i
			}
		}
		if next < 0 {
			// Everything was taken: a message over the budget alone, as
			// the first of its page must be. Nothing was left out.
			return 0, false
		}
		m := &chans[next].Messages[pos[next]]
		if taken > 0 && size+len(m.JSON)+1 > maxBytes {
			break
		}
		size += len(m.JSON) + 1
		taken++
		last = m.ID
		pos[next]++
	}
	for i := range chans {
		chans[i].Messages = chans[i].Messages[:pos[i]:pos[i]]
	}
	return last, true
}
