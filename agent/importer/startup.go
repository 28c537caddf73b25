package importer

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
)

// PublishImports puts the import request of every RemoteCluster in the informer cache into the
// outbox at once, without calling Elasticsearch. Call it after the cache synced and before any
// peer stream opens: each stream's first Inventory then lists every link this environment
// imports, and a peer does not take a link missing from an early, partial Inventory for one that
// was removed (which would invalidate its key, so every restart of this agent would break the
// links until new keys were delivered). The signing CA is reloaded from its Secret: while this
// replica stood by, the leader may have rotated it.
func (im *Importer) PublishImports(ctx context.Context) {
	im.signer.mu.Lock()
	im.signer.auth, im.signer.secret = nil, nil
	im.signer.mu.Unlock()
	seen := map[types.NamespacedName]bool{}
	for _, rc := range im.cfg.Cache.RemoteClustersShared() {
		key := types.NamespacedName{Namespace: rc.Namespace, Name: rc.Spec.ElasticsearchRef.Name}
		if seen[key] {
			continue
		}
		seen[key] = true
		es, _ := im.cfg.Cache.Elasticsearch(key.Namespace, key.Name)
		// The license last read, if any: no Elasticsearch call holds up the requests here.
		im.publishImports(ctx, im.plan(key.Namespace, key.Name), es, im.licenses.Peek(key.Namespace+"/"+key.Name))
	}
}
