package esim

import (
	"net/http"
	"strings"
)

// settingsFromJSON is Settings.fromXContent: nested objects are flattened
// with ".", arrays must hold scalars, numbers and booleans keep their text.
func settingsFromJSON(v *jnode) (map[string]settingValue, []string, *Error) {
	out := map[string]settingValue{}
	var order []string
	var walk func(prefix string, v *jnode) *Error
	walk = func(prefix string, v *jnode) *Error {
		for _, f := range v.fields {
			key := prefix + f.name
			val := f.val
			var sv settingValue
			switch val.kind {
			case jObject:
				if err := walk(key+".", val); err != nil {
					return err
				}
				continue
			case jArray:
				sv.isList = true
				sv.list = []string{}
				for _, it := range val.items {
					if it.kind != jString && it.kind != jNumber && it.kind != jBool {
						return newErr(400, "illegal_state_exception", "only value lists are allowed in serialized settings")
					}
					sv.list = append(sv.list, it.text())
				}
			case jNull:
				sv.null = true
			default:
				sv.s = val.text()
			}
			if _, dup := out[key]; !dup {
				order = append(order, key)
			}
			out[key] = sv
		}
		return nil
	}
	if err := walk("", v); err != nil {
		return nil, nil, err
	}
	return out, order, nil
}

// putClusterSettings is PUT /_cluster/settings.
func (n *Node) putClusterSettings(c *reqCtx) (action, error) {
	flat, err := c.boolParam("flat_settings", false)
	if err != nil {
		return nil, err
	}
	if err := checkTimeParams(c, "master_timeout", "timeout"); err != nil {
		return nil, err
	}
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	var persistent, transient map[string]settingValue
	settingsField := func(dst *map[string]settingValue) func(*jnode) *Error {
		return func(v *jnode) *Error {
			m, _, err := settingsFromJSON(v)
			*dst = m
			return err
		}
	}
	op := &objParser{name: "cluster_update_settings_request", fields: []fieldDecl{
		{"persistent", tObject, settingsField(&persistent)},
		{"transient", tObject, settingsField(&transient)},
	}}
	if err := op.parse(body); err != nil {
		return nil, err
	}
	return func() (*response, error) {
		if len(persistent) == 0 && len(transient) == 0 {
			return nil, validationErr([]string{"no settings to update"})
		}
		updP, updT, err := n.updateSettings(persistent, transient)
		if err != nil {
			return nil, err
		}
		resp := &response{status: 200, body: obj{
			{"acknowledged", true}, {"persistent", renderSettings(updP, flat)}, {"transient", renderSettings(updT, flat)},
		}}
		if len(transient) > 0 {
			resp.header = http.Header{"Warning": {`299 Elasticsearch-` + n.ver.raw + `-` + n.ver.buildHash() +
				` "[transient settings removal] Updating cluster settings through transientSettings is deprecated. Use persistent settings instead."`}}
		}
		return resp, nil
	}, nil
}

func checkTimeParams(c *reqCtx, names ...string) *Error {
	for _, p := range names {
		if _, _, err := c.timeParam(p); err != nil {
			return err
		}
	}
	return nil
}

// updateSettings is SettingsUpdater.updateSettings: transient first, then
// persistent; then each scope's final settings are validated with their
// dependencies, then the merged settings of the changed remotes.
func (n *Node) updateSettings(persistent, transient map[string]settingValue) (settingsMap, settingsMap, *Error) {
	if err := n.checkSigningFiles(transient, persistent); err != nil {
		return nil, nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	newT, updT := n.transient.clone(), settingsMap{}
	if err := n.applyScope(transient, newT, updT, "transient"); err != nil {
		return nil, nil, err
	}
	newP, updP := n.persistent.clone(), settingsMap{}
	if err := n.applyScope(persistent, newP, updP, "persistent"); err != nil {
		return nil, nil, err
	}
	if err := n.validateScope(newT, nil, false); err != nil {
		return nil, nil, err
	}
	if err := n.validateScope(newP, nil, false); err != nil {
		return nil, nil, err
	}
	oldMerged, newMerged := merge(n.persistent, n.transient), merge(newP, newT)
	changed := map[string]bool{}
	for _, m := range []settingsMap{oldMerged, newMerged} {
		for k := range m {
			if _, alias, _, ok := n.lookup(k); ok && alias != "" {
				a, aok := oldMerged[k]
				b, bok := newMerged[k]
				if aok != bok || !a.equal(b) {
					changed[alias] = true
				}
			}
		}
	}
	if err := n.validateScope(newMerged, changed, true); err != nil {
		return nil, nil, err
	}
	if n.ver.hasSigningSettings() {
		if err := checkSigningExclusive(newMerged); err != nil {
			return nil, nil, err
		}
	}
	different := !sameSettings(n.persistent, newP) || !sameSettings(n.transient, newT)
	n.persistent, n.transient = newP, newT
	if different {
		n.notifyLocked()
		n.log.Info("updated cluster settings", "persistent", strings.Join(sortedKeys(updP), ","), "transient", strings.Join(sortedKeys(updT), ","))
	}
	return updP, updT, nil
}

func sameSettings(a, b settingsMap) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !v.equal(w) {
			return false
		}
	}
	return true
}

func merge(persistent, transient settingsMap) settingsMap {
	m := persistent.clone()
	for k, v := range transient {
		m[k] = v
	}
	return m
}

// applyScope is AbstractScopedSettings.updateSettings(onlyDynamic=true).
func (n *Node) applyScope(toApply map[string]settingValue, target, updates settingsMap, scope string) *Error {
	var deletes []string
	puts := settingsMap{}
	for _, key := range sortedKeys(toApply) {
		v := toApply[key]
		def, _, _, known := n.lookup(key)
		switch {
		case v.null && ((known && def.dynamic) || strings.HasSuffix(key, "*")):
			deletes = append(deletes, key)
		case !known:
			return iae("%s setting [%s], not recognized", scope, key)
		case !v.null && def.dynamic:
			if err := checkValue(key, def, v); err != nil {
				return err
			}
			puts[key], updates[key] = v, v
		default:
			return iae("%s setting [%s], not dynamically updateable", scope, key)
		}
	}
	for _, pattern := range deletes {
		for key := range target {
			if def, _, _, known := n.lookup(key); known && def.dynamic && simpleMatch(pattern, key) {
				delete(target, key)
			}
		}
	}
	for k, v := range puts {
		target[k] = v
	}
	return nil
}

// remoteMode returns the configured connection mode of alias in s.
func (n *Node) remoteMode(s settingsMap, alias string) (string, *Error) {
	v, ok := s["cluster.remote."+alias+".mode"]
	if !ok {
		return modeSniff, nil
	}
	return parseEnum(modeEnum, v.s)
}

// remoteEnabled is RemoteConnectionStrategy.isConnectionEnabled.
func (n *Node) remoteEnabled(s settingsMap, alias string) (bool, *Error) {
	mode, err := n.remoteMode(s, alias)
	if err != nil {
		return false, err
	}
	if mode == modeSniff {
		return len(s["cluster.remote."+alias+".seeds"].asList()) > 0, nil
	}
	return s["cluster.remote."+alias+".proxy_address"].s != "", nil
}

// validateScope is ClusterSettings.validate(settings, validateDependencies)
// for remote settings: the StrategyValidator mode check and the
// RemoteConnectionEnabled check. The per-scope run reports the first failure
// with the others suppressed; the merged run (only) checks aliases in
// onlyAliases and stops at the first failure.
func (n *Node) validateScope(s settingsMap, onlyAliases map[string]bool, merged bool) *Error {
	var errs []*Error
	for _, key := range sortedKeys(s) {
		def, alias, _, ok := n.lookup(key)
		if !ok || alias == "" || (merged && !onlyAliases[alias]) {
			continue
		}
		err := checkValue(key, def, s[key])
		if err == nil && def.mode != "" {
			mode, merr := n.remoteMode(s, alias)
			if err = merr; err == nil && mode != def.mode {
				err = iae(`Setting "%s" cannot be used with the configured "cluster.remote.%s.mode" [required=%s, configured=%s]`, key, alias, def.mode, mode)
			}
		}
		if err == nil && def.needsEnabled {
			enabled, eerr := n.remoteEnabled(s, alias)
			if err = eerr; err == nil && !enabled {
				err = iae("Cannot configure setting [%s] if remote cluster is not enabled.", key)
			}
		}
		if err != nil {
			if merged {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	first := *errs[0]
	first.Suppressed = errs[1:]
	return &first
}
