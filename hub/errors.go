package hub

import "errors"

// Error is an API error: a negative return code and the original server's
// message. Callers compare with errors.Is against the values below, or read
// Code to build a reply.
type Error struct {
	Code    int
	Message string
	// Detail, when set, says what exactly was wrong; it follows Message
	// after a colon in the reply.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Message
	}
	return e.Message + ": " + e.Detail
}

// With returns a copy of e that carries detail.
func (e *Error) With(detail string) *Error {
	return &Error{Code: e.Code, Message: e.Message, Detail: detail}
}

// Is matches errors with the same code and message, so that an error built
// with With still matches its template.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == e.Message
}

// Return codes of the API.
const (
	CodeOK      = 1
	CodeRemoved = 2
	// CodeBadRequest: missing or invalid input.
	CodeBadRequest = -1
	// CodeConflict: the thing exists already, or does not exist.
	CodeConflict = -2
	// CodeUnregistered: a read with an unknown or expired client_id.
	CodeUnregistered = -3
	// CodeUnavailable: the store cannot be reached.
	CodeUnavailable = -4
	// CodeOverloaded: the held-connection limit is reached.
	CodeOverloaded = -5
)

// The API's errors, with the original server's messages.
var (
	ErrMissingChannelID   = &Error{Code: CodeBadRequest, Message: "Missing channel id"}
	ErrMissingContent     = &Error{Code: CodeBadRequest, Message: "Missing content"}
	ErrMissingClientID    = &Error{Code: CodeBadRequest, Message: "Missing client id"}
	ErrEmptyReadClientID  = &Error{Code: CodeBadRequest, Message: "Missing client_id"}
	ErrInvalidMaxMessages = &Error{Code: CodeBadRequest, Message: "Invalid max messages value"}
	ErrInvalidUseSessions = &Error{Code: CodeBadRequest, Message: "Invalid use_sessions value"}
	ErrMessageTooLarge    = &Error{Code: CodeBadRequest, Message: "Message too large"}
	ErrInvalidContent     = &Error{Code: CodeBadRequest, Message: "Invalid content: not valid UTF-8"}
	ErrTooManyChannels    = &Error{Code: CodeBadRequest, Message: "Too many channels in one read"}
	ErrInvalidChannelID   = &Error{Code: CodeBadRequest, Message: "Invalid channel id"}
	ErrInvalidClientID    = &Error{Code: CodeBadRequest, Message: "Invalid client id"}
	// ErrInvalidIdempotencyKey: the key of a publish breaks the id rules.
	ErrInvalidIdempotencyKey = &Error{Code: CodeBadRequest, Message: "Invalid idempotency key"}
	ErrChannelExists         = &Error{Code: CodeConflict, Message: "Channel already exists"}
	ErrClientExists          = &Error{Code: CodeConflict, Message: "Client already exists"}
	ErrNoChannel             = &Error{Code: CodeConflict, Message: "Nonexistent channel"}
	ErrNoChannels            = &Error{Code: CodeConflict, Message: "No channels"}
	ErrNoValidChannels       = &Error{Code: CodeConflict, Message: "No valid channels"}
	ErrUnregisteredClient    = &Error{Code: CodeUnregistered, Message: "Unregistered client_id"}
	ErrStoreUnavailable      = &Error{Code: CodeUnavailable, Message: "Store unavailable"}
	ErrTooManyHeld           = &Error{Code: CodeOverloaded, Message: "Too many held connections"}
	ErrTooManyHeldByPeer     = &Error{Code: CodeOverloaded, Message: "Too many held connections from one address"}
	ErrHubChannelLimit       = &Error{Code: CodeBadRequest, Message: "Too many channels"}
	ErrHubClientLimit        = &Error{Code: CodeBadRequest, Message: "Too many clients"}
)

// AsError returns err as an API error: itself when it is one, and
// ErrStoreUnavailable for anything else (a store failure).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ErrStoreUnavailable
}
