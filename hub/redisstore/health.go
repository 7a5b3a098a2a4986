package redisstore

import (
	"sync/atomic"

	"go.uber.org/zap"
)

// health remembers whether Redis is reachable, so that an outage is logged
// once when it starts and once when it ends rather than once per request.
type health struct {
	down atomic.Bool
	log  *zap.Logger
}

// failed records a failed round trip.
func (h *health) failed(err error) {
	if h.down.CompareAndSwap(false, true) {
		h.log.Error("redis unreachable: store calls fail with 'Store unavailable' until it is back",
			zap.Error(err))
	}
}

// succeeded records a successful round trip.
func (h *health) succeeded() {
	if h.down.Load() && h.down.CompareAndSwap(true, false) {
		h.log.Info("redis reachable again")
	}
}
