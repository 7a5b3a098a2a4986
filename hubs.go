package comet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/comethttp"
	"github.com/simple-comet/caddy-comet/hub"
)

// hubPool holds every running hub of the process, keyed by hub name and
// store configuration. A hub outlives the configurations that use it: a
// reload provisions the new configuration (which finds the hub here) before
// it cleans up the old one. What one configuration uses of it is in
// App.configHubs.
var hubPool = caddy.NewUsagePool()

// pooledHub is a running hub with its HTTP state, kept beside it so that
// what the HTTP layer counts (caddy_comet_replies_total,
// caddy_comet_errors_total) and the writers of its event streams survive
// reloads as the hub's own Stats do: every configuration's routes of the
// hub build their comethttp.Handler over the same state.
type pooledHub struct {
	*hub.Hub
	http *comethttp.HubState

	// settingsMu orders the configurations that start and stop around a
	// reload as they hand the hub its settings; settingsApplied numbers
	// each hand-over, so that a configuration stopping can tell whether
	// the settings it gave are still the hub's (see applySettings).
	settingsMu      sync.Mutex
	settingsApplied uint64
}

// runningSettings are the settings a hub runs with: the engine's and the
// HTTP layer's.
type runningSettings struct {
	config          hub.Config
	ipv6PrefixPerIP int32
}

func (s HubSettings) running() runningSettings {
	return runningSettings{config: s.config(), ipv6PrefixPerIP: int32(s.IPv6PrefixPerIP)}
}

// setSettings hands the hub its settings.
func (p *pooledHub) setSettings(s runningSettings) {
	p.SetConfig(s.config)
	p.http.SetIPv6PrefixPerIP(int(s.ipv6PrefixPerIP))
}

// appliedSettings is what one configuration's start changed of a hub's
// settings, so that its stop can undo it.
type appliedSettings struct {
	applied  uint64          // the hand-over that gave this configuration's settings
	previous runningSettings // the settings the hub ran with before it
	prevOf   uint64          // the hand-over that gave those
}

// applySettings makes s the hub's settings. A configuration's settings
// take effect only when it starts: Caddy provisions a new configuration
// while the old one still serves, and throws the new one away if any of
// its modules fails, so a hub changed while it was provisioned would run
// with settings of a configuration that never ran.
func (p *pooledHub) applySettings(s runningSettings) appliedSettings {
	p.settingsMu.Lock()
	defer p.settingsMu.Unlock()
	a := appliedSettings{
		previous: runningSettings{config: p.Config(), ipv6PrefixPerIP: int32(p.http.IPv6PrefixPerIP())},
		prevOf:   p.settingsApplied,
	}
	p.settingsApplied++
	a.applied = p.settingsApplied
	p.setSettings(s)
	return a
}

// revertSettings gives the hub back the settings it had before a, unless
// another configuration has applied its own since: Caddy stops a started
// configuration when another app of it fails to start, and that must
// leave the hub as the running configuration had it. A configuration
// stopped after its successor started finds its settings replaced, and
// leaves them.
func (p *pooledHub) revertSettings(a appliedSettings) {
	p.settingsMu.Lock()
	defer p.settingsMu.Unlock()
	if p.settingsApplied != a.applied {
		return
	}
	p.setSettings(a.previous)
	p.settingsApplied = a.prevOf
}

// Destruct closes the hub once no configuration uses it.
func (p *pooledHub) Destruct() error {
	p.http.Close()
	return p.Close()
}

// hubUse is one hub as this configuration's handlers asked for it.
type hubUse struct {
	poolKey  string
	storeRaw json.RawMessage
	// settings are the merged settings of the configuration's routes of
	// the hub, which it applies when it starts.
	settings HubSettings
	pooled   *pooledHub
	// created: this configuration opened the hub, so no running
	// configuration uses it and it can take the settings at once.
	created bool
	// applied is set while the configuration runs: what its start changed.
	applied *appliedSettings
}

// hub returns the hub named name for a handler, creating it on first use.
// Handlers that name the same hub must agree on its store and on every
// setting both of them set; a setting only one of them sets applies to both.
// The settings take effect when the configuration starts (App.Start): a
// hub that a running configuration uses keeps its settings until then.
func (a *App) useHub(name string, s HubSettings, storeRaw json.RawMessage, store func() (StoreOpener, error)) (*pooledHub, error) {
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
		if use.created {
			use.pooled.setSettings(merged.running())
		}
		return use.pooled, nil
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
		p := &pooledHub{Hub: h, http: comethttp.NewHubState(h)}
		p.setSettings(s.running())
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hub %q: %w", name, err)
	}
	h := val.(*pooledHub)
	a.logger.Info("hub ready", zap.String("hub", name), zap.String("store", storeLabel(storeRaw)), zap.Bool("reused", loaded))
	a.configHubs[name] = &hubUse{poolKey: key, storeRaw: storeRaw, settings: s, pooled: h, created: !loaded}
	a.metrics.add(name, h)
	return h, nil
}

// applyHubSettings gives each hub this configuration uses the settings of
// its routes; a reload's hubs keep their state and take the new settings.
func (a *App) applyHubSettings() {
	for _, use := range a.configHubs {
		applied := use.pooled.applySettings(use.settings.running())
		use.applied = &applied
	}
}

// revertHubSettings undoes applyHubSettings where no later configuration
// has applied its own settings.
func (a *App) revertHubSettings() {
	for _, use := range a.configHubs {
		if use.applied != nil {
			use.pooled.revertSettings(*use.applied)
			use.applied = nil
		}
	}
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
