package comet

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

// hubPool holds every running hub of the process, keyed by hub name and
// store configuration. A hub outlives the configurations that use it: a
// reload provisions the new configuration (which finds the hub here) before
// it cleans up the old one. What one configuration uses of it is in
// App.configHubs.
var hubPool = caddy.NewUsagePool()

// pooledHub is a running hub with what the HTTP layer counts of it, kept
// beside it so that the counts survive reloads as the hub's own Stats do.
type pooledHub struct {
	*hub.Hub

	// replies counts the API replies sent from this hub, for
	// caddy_comet_replies_total, and errors those with a negative
	// return_code, by -code, for caddy_comet_errors_total. They are HTTP's
	// counts, so they live here rather than in the engine, beside the hub
	// so that, like it, they outlive reloads.
	replies atomic.Int64
	errors  [-hub.CodeOverloaded + 1]atomic.Int64

	// writers write the events of the hub's event streams, whichever
	// configuration's routes opened them.
	writers *eventWriters

	// ipv6PrefixPerIP is the hub's ipv6_prefix_per_ip (0: its default).
	// The engine takes peers as opaque keys, so the HTTP layer keeps the
	// setting here, beside the hub, and sets it with the hub's Config
	// (setSettings).
	ipv6PrefixPerIP atomic.Int32
}

// setSettings hands the hub its settings, the engine's and the HTTP
// layer's.
func (p *pooledHub) setSettings(s HubSettings) {
	p.SetConfig(s.config())
	p.ipv6PrefixPerIP.Store(int32(s.IPv6PrefixPerIP))
}

// peerOf is the key a client's held reads count under for max_held_per_ip
// (see peerKey).
func (p *pooledHub) peerOf(ip string) string {
	return peerKey(ip, cmp.Or(int(p.ipv6PrefixPerIP.Load()), DefaultIPv6PrefixPerIP))
}

// countError records an error reply with a negative return code; other
// codes are ignored.
func (p *pooledHub) countError(code int) {
	if -code > 0 && -code < len(p.errors) {
		p.errors[-code].Add(1)
	}
}

// Destruct closes the hub once no configuration uses it.
func (p *pooledHub) Destruct() error {
	p.writers.close()
	return p.Close()
}

// hubUse is one hub as this configuration's handlers asked for it.
type hubUse struct {
	poolKey  string
	storeRaw json.RawMessage
	settings HubSettings
	hub      *pooledHub
}

// hub returns the hub named name for a handler, creating it on first use.
// Handlers that name the same hub must agree on its store and on every
// setting both of them set; a setting only one of them sets applies to both.
func (a *App) hub(name string, s HubSettings, storeRaw json.RawMessage, store func() (StoreOpener, error)) (*pooledHub, error) {
	if use, ok := a.configHubs[name]; ok {
		if !bytes.Equal(storeKey(use.storeRaw), storeKey(storeRaw)) {
			return nil, fmt.Errorf("hub %q: routes name different stores (%s and %s); give them different hub names or the same store",
				name, storeLabel(use.storeRaw), storeLabel(storeRaw))
		}
		merged, err := use.settings.merge(s)
		if err == nil {
			err = merged.check()
		}
		if err != nil {
			return nil, fmt.Errorf("hub %q: %w", name, err)
		}
		use.settings = merged
		use.hub.setSettings(merged)
		return use.hub, nil
	}

	if err := s.check(); err != nil {
		return nil, fmt.Errorf("hub %q: %w", name, err)
	}
	opener, err := store()
	if err != nil {
		return nil, fmt.Errorf("hub %q: loading store: %w", name, err)
	}
	key := name + "\x00" + string(storeKey(storeRaw))
	val, loaded, err := hubPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		h, err := hub.New(name, s.config(), opener.OpenStore)
		if err != nil {
			return nil, err
		}
		p := &pooledHub{Hub: h, writers: newEventWriters()}
		p.ipv6PrefixPerIP.Store(int32(s.IPv6PrefixPerIP))
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hub %q: %w", name, err)
	}
	h := val.(*pooledHub)
	if loaded {
		// A reload: the hub keeps its state and takes the new settings.
		h.setSettings(s)
	}
	a.logger.Info("hub ready", zap.String("hub", name), zap.String("store", storeLabel(storeRaw)), zap.Bool("reused", loaded))
	a.configHubs[name] = &hubUse{poolKey: key, storeRaw: storeRaw, settings: s, hub: h}
	a.metrics.add(name, h)
	return h, nil
}

// storeKey identifies a store configuration: no store is the memory store,
// so a route (or a reload) that spells out "store memory" gets the same hub
// as one that leaves it out.
func storeKey(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		raw = json.RawMessage(`{"store":"memory"}`)
	}
	return compactJSON(raw)
}

func compactJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

func storeLabel(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "memory"
	}
	var v struct {
		Store string `json:"store"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.Store
}
