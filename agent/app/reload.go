package app

import (
	"context"
	"maps"
	"os"
	"time"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/elastic"
)

// watchConfig applies changes of elasticsearchEndpoints in the config file without a restart
// (e.g. a ConfigMap update, or an operator adding an Elasticsearch to an out-of-cluster agent).
// Other keys need a restart; a file that no longer validates is ignored with a warning.
func (a *Agent) watchConfig(resolver *elastic.Resolver) func(context.Context) error {
	return func(ctx context.Context) error {
		if a.cfg.File == "" {
			<-ctx.Done()
			return ctx.Err()
		}
		var lastMod time.Time
		if fi, err := os.Stat(a.cfg.File); err == nil {
			lastMod = fi.ModTime()
		}
		current := maps.Clone(a.cfg.ElasticsearchEndpoints)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			fi, err := os.Stat(a.cfg.File)
			if err != nil || fi.ModTime().Equal(lastMod) {
				continue
			}
			lastMod = fi.ModTime()
			cfg, err := config.LoadFile(a.cfg.File)
			if err == nil {
				// Only the endpoints are reloaded: whether http is allowed stays as the agent
				// started, so an edit of the file cannot turn it on behind a running agent.
				cfg.Environment, cfg.Namespace = a.cfg.Environment, a.cfg.Namespace
				cfg.AllowInsecureElasticsearch = a.cfg.AllowInsecureElasticsearch
				err = cfg.Validate()
			}
			if err != nil {
				a.log.Warn("config file changed but is invalid, keeping the running configuration", "file", a.cfg.File, "error", err)
				continue
			}
			next := maps.Clone(cfg.ElasticsearchEndpoints)
			if next == nil {
				next = map[string]string{}
			}
			maps.Copy(next, a.cfg.FlagEndpoints)
			if maps.Equal(next, current) {
				continue
			}
			endpoints, err := parseEndpoints(next)
			if err == nil {
				err = resolver.SetEndpoints(endpoints)
			}
			if err != nil {
				a.log.Warn("invalid elasticsearchEndpoints in the config file", "file", a.cfg.File, "error", err)
				continue
			}
			current = next
			a.log.Info("elasticsearch endpoints reloaded", "count", len(next))
		}
	}
}

func parseEndpoints(m map[string]string) (map[elastic.Target]string, error) {
	out := make(map[elastic.Target]string, len(m))
	for k, v := range m {
		t, err := elastic.ParseTarget(k)
		if err != nil {
			return nil, err
		}
		out[t] = v
	}
	return out, nil
}
