package importer

import (
	"context"
	"fmt"

	"github.com/ecklink/ecklink/agent/elastic"
)

// esReads are what one pass read of the local Elasticsearch's remote cluster settings and of
// GET /_remote/info. Each is read once a pass, however many security models' passes ask (an
// Elasticsearch with links of both models cost two of each before), and read again only after a
// settings write through the client (elastic.Client.SettingsWrites moved): a pass that wrote
// settings verifies against what Elasticsearch reports after its write.
type esReads struct {
	settings esRead[map[string]elastic.RemoteSettings]
	info     esRead[map[string]elastic.RemoteInfo]
}

// esRead is one read kept for the rest of the pass: v, read while the client's settings write
// count stood at at (even: no write in flight).
type esRead[T any] struct {
	client *elastic.Client
	at     uint64
	v      T
}

// get returns the kept value when nothing was written through client since it was read,
// otherwise reads it again. Callers must not change what it returns.
func (r *esRead[T]) get(client *elastic.Client, read func() (T, error)) (T, error) {
	if r.client == client && client.SettingsWrites() == r.at {
		return r.v, nil
	}
	at := client.SettingsWrites()
	v, err := read()
	if err != nil {
		*r = esRead[T]{}
		return v, err
	}
	*r = esRead[T]{v: v}
	if at%2 == 0 && client.SettingsWrites() == at {
		r.client, r.at = client, at
	}
	return v, nil
}

// remoteSettings is GET of the remote cluster settings, once a pass (esReads).
func (st *state) remoteSettings(ctx context.Context, client *elastic.Client) (map[string]elastic.RemoteSettings, error) {
	s, err := st.reads.settings.get(client, func() (map[string]elastic.RemoteSettings, error) { return client.GetRemoteSettings(ctx) })
	if err != nil {
		return nil, fmt.Errorf("failed to read remote cluster settings: %w", err)
	}
	return s, nil
}

// clientAndSettings builds the pass's client (esClient) and reads the remote cluster settings
// through it (remoteSettings): what a model's pass needs before it edits any setting.
func (st *state) clientAndSettings(ctx context.Context, esClient func() (*elastic.Client, error)) (*elastic.Client, map[string]elastic.RemoteSettings, error) {
	client, err := esClient()
	if err != nil {
		return nil, nil, err
	}
	current, err := st.remoteSettings(ctx, client)
	if err != nil {
		return nil, nil, err
	}
	return client, current, nil
}

// remoteInfo is GET /_remote/info, once a pass (esReads).
func (st *state) remoteInfo(ctx context.Context, client *elastic.Client) (map[string]elastic.RemoteInfo, error) {
	return st.reads.info.get(client, func() (map[string]elastic.RemoteInfo, error) { return client.RemoteInfo(ctx) })
}

// loadInfo reads GET /_remote/info (remoteInfo) and records what it reports of each alias; none
// after a failed read.
func (st *state) loadInfo(ctx context.Context, client *elastic.Client) error {
	info, err := st.remoteInfo(ctx, client)
	st.setInfo(info)
	if err != nil {
		return fmt.Errorf("failed to read remote info: %w", err)
	}
	return nil
}
