package comet

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims a token is decoded into.
type tokenClaims struct {
	jwt.RegisteredClaims
	Comet grant `json:"comet"`
}

// grant is what a token allows: its comet claim.
type grant struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
	Manage    bool     `json:"manage,omitempty"`
	Status    bool     `json:"status,omitempty"`

	// until is when the token stops being taken: exp plus leeway. An
	// event stream opened with it ends then.
	until time.Time
}

// covers reports whether list names channel, or holds "*".
func covers(list []string, channel string) bool {
	for _, c := range list {
		if c == channel || c == "*" {
			return true
		}
	}
	return false
}
