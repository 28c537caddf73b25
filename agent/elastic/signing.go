package elastic

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// Strong identity verification (Elasticsearch 9.3+) settings. The local cluster signs the
// requests of an alias with cluster.remote.<alias>.signing.certificate and .key; the remote
// verifies signatures against cluster.remote.signing.certificate_authorities. Elasticsearch
// refuses a path that does not name a file on every node ("Configured file [..] not found"),
// so a successful write also proves the files are mounted.

// KeySigningCAs is the remote (verifying) cluster's list of trusted signing CA files.
const KeySigningCAs = "cluster.remote.signing.certificate_authorities"

// Signing is an alias's signing material paths; empty when it does not sign.
type Signing struct {
	Certificate string
	Key         string
}

// SigningOf returns the signing paths of an alias from its settings.
func SigningOf(rs RemoteSettings) Signing {
	return Signing{Certificate: rs.Other["signing.certificate"], Key: rs.Other["signing.key"]}
}

// PutSigning sets (want non-empty) or removes (want empty) the signing certificate and key of
// alias, in one persistent settings update. It reports whether it wrote.
func (c *Client) PutSigning(ctx context.Context, alias string, want Signing) (bool, error) {
	if err := validateAlias(alias); err != nil {
		return false, fmt.Errorf("failed to put signing settings of %s: %w", alias, err)
	}
	if (want.Certificate == "") != (want.Key == "") {
		return false, fmt.Errorf("failed to put signing settings of %s: certificate and key must be set together", alias)
	}
	all, err := c.GetRemoteSettings(ctx)
	if err != nil {
		return false, fmt.Errorf("failed to put signing settings of %s: %w", alias, err)
	}
	if SigningOf(all[alias]) == want {
		return false, nil
	}
	key := func(suffix string) string { return remotePrefix + alias + ".signing." + suffix }
	settings := map[string]json.RawMessage{key("certificate"): jsonNull, key("key"): jsonNull}
	if want.Certificate != "" {
		settings[key("certificate")] = mustJSON(want.Certificate)
		settings[key("key")] = mustJSON(want.Key)
	}
	if err := c.putPersistent(ctx, settings); err != nil {
		return false, fmt.Errorf("failed to put signing settings of %s: %w", alias, err)
	}
	c.log.Info("put signing settings", logKeyAlias, alias, "signing", want.Certificate != "")
	return true, nil
}

// GetSigningCAs returns the persistent cluster.remote.signing.certificate_authorities.
func (c *Client) GetSigningCAs(ctx context.Context) ([]string, error) {
	flat, err := c.persistentFlat(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to get signing certificate authorities: %w", err)
	}
	return stringList(flat[KeySigningCAs]), nil
}

// PutSigningCAs sets cluster.remote.signing.certificate_authorities to paths (nil removes it).
// It reports whether it wrote.
func (c *Client) PutSigningCAs(ctx context.Context, paths []string) (bool, error) {
	have, err := c.GetSigningCAs(ctx)
	if err != nil {
		return false, err
	}
	if slices.Equal(have, paths) {
		return false, nil
	}
	value := jsonNull
	if len(paths) > 0 {
		b, err := json.Marshal(paths)
		if err != nil {
			return false, fmt.Errorf("failed to put signing certificate authorities: %w", err)
		}
		value = b
	}
	if err := c.putPersistent(ctx, map[string]json.RawMessage{KeySigningCAs: value}); err != nil {
		return false, fmt.Errorf("failed to put signing certificate authorities: %w", err)
	}
	c.log.Info("put signing certificate authorities", "count", len(paths))
	return true, nil
}
