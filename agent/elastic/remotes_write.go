package elastic

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

var jsonNull = json.RawMessage("null")

// PutRemote configures alias in persistent proxy mode
// (PUT /_cluster/settings): mode, proxy_address and server_name (nulled
// when empty), skip_unavailable and proxy_socket_connections only when set;
// want's sniff fields and Other are ignored, and keys it does not set (e.g.
// transport.*) are left as they are.
// Sniff-mode keys of the alias are nulled in the same request, as ES requires
// when switching modes. It reads the current settings first and sends
// nothing when they already match; it reports whether it wrote.
func (c *Client) PutRemote(ctx context.Context, alias string, want RemoteSettings) (bool, error) {
	if err := checkPutRemote(alias, want); err != nil {
		return false, err
	}
	all, err := c.GetRemoteSettings(ctx)
	if err != nil {
		return false, fmt.Errorf("failed to put remote cluster %s: %w", alias, err)
	}
	return c.PutRemoteOver(ctx, alias, want, all)
}

// PutRemoteOver is PutRemote against the settings current the caller read with
// GetRemoteSettings: a caller that configures many aliases reads them once, not once per alias
// (each alias's keys are its own, so writing one leaves the others' current).
func (c *Client) PutRemoteOver(ctx context.Context, alias string, want RemoteSettings, current map[string]RemoteSettings) (bool, error) {
	if err := checkPutRemote(alias, want); err != nil {
		return false, err
	}
	have := current[alias]
	if proxyUpToDate(have, want) {
		return false, nil
	}
	settings := map[string]json.RawMessage{}
	addProxySettings(settings, alias, have, want)
	if err := c.putPersistent(ctx, settings); err != nil {
		return false, fmt.Errorf("failed to put remote cluster %s: %w", alias, err)
	}
	c.log.Info("put remote cluster settings", logKeyAlias, alias)
	return true, nil
}

// MaxRemotesPerPut bounds the aliases PutRemotesOver writes in one request.
const MaxRemotesPerPut = 100

// PutRemotesOver is PutRemoteOver for many aliases: the aliases whose settings differ are
// written together, up to MaxRemotesPerPut per request. Each PUT /_cluster/settings is a cluster
// state update that the master publishes to every node, so a pass that configures 100 new
// links costs one, not 100. Elasticsearch validates a request as a whole: when one is refused,
// its aliases are written one by one, so one alias Elasticsearch refuses does not hold back the
// others (the first error is returned after them). It returns the aliases it wrote, in order.
func (c *Client) PutRemotesOver(ctx context.Context, wants map[string]RemoteSettings, current map[string]RemoteSettings) ([]string, error) {
	var stale []string
	for _, alias := range slices.Sorted(maps.Keys(wants)) {
		if err := checkPutRemote(alias, wants[alias]); err != nil {
			return nil, err
		}
		if !proxyUpToDate(current[alias], wants[alias]) {
			stale = append(stale, alias)
		}
	}
	var written []string
	var firstErr error
	for chunk := range slices.Chunk(stale, MaxRemotesPerPut) {
		settings := map[string]json.RawMessage{}
		for _, alias := range chunk {
			addProxySettings(settings, alias, current[alias], wants[alias])
		}
		err := c.putPersistent(ctx, settings)
		if err == nil {
			written = append(written, chunk...)
			c.log.Info("put remote cluster settings", "aliases", len(chunk), "alias_range", chunk[0]+".."+chunk[len(chunk)-1])
			continue
		}
		if len(chunk) == 1 || Retryable(err) || ctx.Err() != nil {
			return written, fmt.Errorf("failed to put remote clusters %s..%s: %w", chunk[0], chunk[len(chunk)-1], err)
		}
		for _, alias := range chunk {
			if _, err := c.PutRemoteOver(ctx, alias, wants[alias], current); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			written = append(written, alias)
		}
	}
	return written, firstErr
}

// addProxySettings adds to settings the keys that configure alias in proxy mode as want says,
// nulling the sniff-mode keys it has.
func addProxySettings(settings map[string]json.RawMessage, alias string, have, want RemoteSettings) {
	key := func(suffix string) string { return remotePrefix + alias + "." + suffix }
	settings[key("mode")] = mustJSON("proxy")
	settings[key("proxy_address")] = mustJSON(want.ProxyAddress)
	settings[key("server_name")] = jsonNull
	if want.ServerName != "" {
		settings[key("server_name")] = mustJSON(want.ServerName)
	}
	if want.SkipUnavailable != nil {
		settings[key("skip_unavailable")] = mustJSON(strconv.FormatBool(*want.SkipUnavailable))
	}
	if want.ProxySocketConnections != nil {
		settings[key("proxy_socket_connections")] = mustJSON(strconv.Itoa(*want.ProxySocketConnections))
	}
	for _, s := range have.keys {
		if slices.Contains(sniffSuffixes, s) {
			settings[key(s)] = jsonNull
		}
	}
}

func checkPutRemote(alias string, want RemoteSettings) error {
	if err := validateAlias(alias); err != nil {
		return fmt.Errorf("failed to put remote cluster %s: %w", alias, err)
	}
	if want.Mode != "" && want.Mode != "proxy" {
		return fmt.Errorf("failed to put remote cluster %s: mode %q is not supported, only proxy", alias, want.Mode)
	}
	if want.ProxyAddress == "" {
		return fmt.Errorf("failed to put remote cluster %s: proxy address is required", alias)
	}
	return nil
}

func proxyUpToDate(have, want RemoteSettings) bool {
	for _, s := range have.keys {
		if slices.Contains(sniffSuffixes, s) {
			return false
		}
	}
	eqInt := func(a, b *int) bool { return b == nil || (a != nil && *a == *b) }
	eqBool := func(a, b *bool) bool { return b == nil || (a != nil && *a == *b) }
	return have.Mode == "proxy" && have.ProxyAddress == want.ProxyAddress && have.ServerName == want.ServerName &&
		eqBool(have.SkipUnavailable, want.SkipUnavailable) &&
		eqInt(have.ProxySocketConnections, want.ProxySocketConnections)
}

// DeleteRemote removes alias (PUT /_cluster/settings nulling, in one
// request, every persistent key the alias has, as ES requires). It reports
// whether the alias existed.
func (c *Client) DeleteRemote(ctx context.Context, alias string) (bool, error) {
	if err := validateAlias(alias); err != nil {
		return false, fmt.Errorf("failed to delete remote cluster %s: %w", alias, err)
	}
	all, err := c.GetRemoteSettings(ctx)
	if err != nil {
		return false, fmt.Errorf("failed to delete remote cluster %s: %w", alias, err)
	}
	have, ok := all[alias]
	if !ok || len(have.keys) == 0 {
		return false, nil
	}
	settings := map[string]json.RawMessage{}
	for _, s := range have.keys {
		settings[remotePrefix+alias+"."+s] = jsonNull
	}
	if err := c.putPersistent(ctx, settings); err != nil {
		return false, fmt.Errorf("failed to delete remote cluster %s: %w", alias, err)
	}
	c.log.Info("deleted remote cluster settings", logKeyAlias, alias)
	return true, nil
}

func (c *Client) putPersistent(ctx context.Context, settings map[string]json.RawMessage) error {
	c.settingsWrites.Add(1)
	defer c.settingsWrites.Add(1)
	var res struct {
		Acknowledged bool `json:"acknowledged"`
	}
	body, err := jsonBody(map[string]map[string]json.RawMessage{"persistent": settings})
	if err != nil {
		return err
	}
	send := c.esapiSender(esapi.ClusterPutSettingsRequest{Body: body})
	if err := c.call(ctx, send, &res); err != nil {
		return err
	}
	if !res.Acknowledged {
		// The master applied and persisted it; some nodes did not confirm in
		// time. Callers verify the outcome through RemoteInfo anyway.
		c.log.Warn("cluster settings update was not acknowledged by all nodes")
	}
	return nil
}

func mustJSON(v string) json.RawMessage {
	b, _ := json.Marshal(v) // strings always encode
	return b
}

// RemoteInfo is the connection state of a remote cluster alias.
type RemoteInfo struct {
	Connected bool
	// Mode is "proxy" or "sniff".
	Mode         string
	ProxyAddress string
	ServerName   string
	Seeds        []string
	// NumSocketsConnected is num_proxy_sockets_connected in proxy mode,
	// num_nodes_connected in sniff mode.
	NumSocketsConnected int
	SkipUnavailable     bool
	// HasCredentials reports that the alias has keystore credentials loaded
	// (cluster_credentials is shown).
	HasCredentials bool
}

// RemoteInfo returns the state of every remote by alias (GET /_remote/info).
func (c *Client) RemoteInfo(ctx context.Context) (map[string]RemoteInfo, error) {
	var res map[string]struct {
		Connected                bool     `json:"connected"`
		Mode                     string   `json:"mode"`
		ProxyAddress             string   `json:"proxy_address"`
		ServerName               string   `json:"server_name"`
		NumProxySocketsConnected int      `json:"num_proxy_sockets_connected"`
		Seeds                    []string `json:"seeds"`
		NumNodesConnected        int      `json:"num_nodes_connected"`
		SkipUnavailable          bool     `json:"skip_unavailable"`
		ClusterCredentials       *string  `json:"cluster_credentials"`
	}
	send := c.esapiSender(esapi.ClusterRemoteInfoRequest{})
	if err := c.call(ctx, send, &res); err != nil {
		return nil, fmt.Errorf("failed to get remote info: %w", err)
	}
	out := make(map[string]RemoteInfo, len(res))
	for alias, r := range res {
		ri := RemoteInfo{
			Connected: r.Connected, Mode: r.Mode, ProxyAddress: r.ProxyAddress, ServerName: r.ServerName,
			Seeds: r.Seeds, SkipUnavailable: r.SkipUnavailable, HasCredentials: r.ClusterCredentials != nil,
			NumSocketsConnected: r.NumProxySocketsConnected,
		}
		if r.Mode == "sniff" {
			ri.NumSocketsConnected = r.NumNodesConnected
		}
		out[alias] = ri
	}
	return out, nil
}
