package hub

import "hash/maphash"

// heldByPeer counts the reads each peer holds, for Config.MaxHeldPerPeer. A
// peer is what the caller names in ReadRequest.Peer: to the Caddy handler,
// the client's IP address. Only peers that hold reads have an entry, so it
// costs no more than the held reads do.
type heldByPeer struct {
	counts shardedMap[string, int]
}

func newHeldByPeer() *heldByPeer {
	p := &heldByPeer{}
	p.counts.init(maphash.String)
	return p
}

// acquire counts one more read held by peer, unless peer holds limit
// already.
func (p *heldByPeer) acquire(peer string, limit int) bool {
	s := p.counts.shard(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[peer] >= limit {
		return false
	}
	s.m[peer]++
	return true
}

// release uncounts a read that acquire counted.
func (p *heldByPeer) release(peer string) {
	s := p.counts.shard(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[peer]; n > 1 {
		s.m[peer] = n - 1
	} else {
		delete(s.m, peer)
	}
}

// count returns how many reads peer holds.
func (p *heldByPeer) count(peer string) int {
	s := p.counts.shard(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[peer]
}
