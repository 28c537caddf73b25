package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/elastic"
)

// The aliases whose cluster.remote.<alias> settings the agent created in a local Elasticsearch
// are the only ones it ever removes. They are recorded in the agent's own namespace, one
// ConfigMap per local Elasticsearch (aliasRecordName), where a user of the Elasticsearch's
// namespace cannot add someone else's alias to make the agent delete it. Release 0.1.0 kept the
// list in the user's namespace (an annotation of <es>-ecklink-remote-ca, and the import/<alias>
// owners of the transport CA ConfigMap); the first reconcile of an Elasticsearch without a
// record migrates that list, adopting only the aliases it can show the agent configured (see
// migrateAliases). An alias is recorded before its settings are written and forgotten after
// they are removed, so a crash in between leaves nothing that nobody removes.

const (
	// aliasRecordPrefix starts the name of a record: ecklink-aliases.<namespace>.<elasticsearch>
	// (both DNS labels, so the dots make the name unique).
	aliasRecordPrefix = "ecklink-aliases."
	// recordKeyAliases holds the aliases, a sorted JSON list.
	recordKeyAliases = "aliases"
	// recordKeyUID holds the Elasticsearch resource's UID: a record of a deleted Elasticsearch
	// says nothing about a new one of the same name.
	recordKeyUID = "elasticsearch-uid"
	// recordKeyElasticsearch names the Elasticsearch (namespace/name), for people.
	recordKeyElasticsearch = "elasticsearch"
	// labelAliasRecord marks the records.
	labelAliasRecord = "ecklink.io/alias-record"
)

// aliasRecordName is the name of the record of Elasticsearch es in namespace ns.
func aliasRecordName(ns, es string) string { return aliasRecordPrefix + ns + "." + es }

// aliasRecord is the stored set of aliases the agent created in one local Elasticsearch.
type aliasRecord struct {
	im      *Importer
	ns, es  string
	uid     string
	cm      *corev1.ConfigMap // as stored; nil while there is none
	aliases map[string]bool
}

// has reports whether the agent created alias.
func (r *aliasRecord) has(alias string) bool { return r.aliases[alias] }

// list returns the recorded aliases, sorted.
func (r *aliasRecord) list() []string { return slices.Sorted(maps.Keys(r.aliases)) }

// add records alias before its settings are written.
func (r *aliasRecord) add(ctx context.Context, alias string) error {
	if r.aliases[alias] {
		return nil
	}
	r.aliases[alias] = true
	return r.save(ctx)
}

// remove forgets alias after its settings are gone; the record goes with the last alias.
func (r *aliasRecord) remove(ctx context.Context, alias string) error {
	if !r.aliases[alias] {
		return nil
	}
	delete(r.aliases, alias)
	return r.save(ctx)
}

// save writes the record (optimistic concurrency), or deletes it when it holds no alias.
func (r *aliasRecord) save(ctx context.Context) error {
	client := r.im.cfg.Kube.CoreV1().ConfigMaps(r.im.cfg.AgentNamespace)
	name := aliasRecordName(r.ns, r.es)
	if len(r.aliases) == 0 {
		if r.cm == nil {
			return nil
		}
		if err := client.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &r.cm.ResourceVersion}}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to delete ConfigMap %s/%s: %w", r.im.cfg.AgentNamespace, name, err)
		}
		r.cm = nil
		return nil
	}
	data, _ := json.Marshal(r.list())
	want := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.im.cfg.AgentNamespace,
			Labels: map[string]string{cache.ManagedByLabel: cache.ManagedByValue, labelAliasRecord: "true"}},
		Data: map[string]string{recordKeyAliases: string(data), recordKeyUID: r.uid, recordKeyElasticsearch: r.ns + "/" + r.es},
	}
	var (
		out *corev1.ConfigMap
		err error
	)
	if r.cm == nil {
		out, err = client.Create(ctx, want, metav1.CreateOptions{})
	} else {
		want.ResourceVersion = r.cm.ResourceVersion
		out, err = client.Update(ctx, want, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("failed to save the alias record %s/%s: %w", r.im.cfg.AgentNamespace, name, err)
	}
	r.cm = out
	return nil
}

// loadAliases reads the record of a local Elasticsearch. Without one, it migrates 0.1.0's
// annotations (which needs the Elasticsearch's settings, read only then); a record of an earlier
// Elasticsearch of the same name is dropped.
func (im *Importer) loadAliases(ctx context.Context, es *unstructured.Unstructured, esClient func() (*elastic.Client, error)) (*aliasRecord, error) {
	ns, name := es.GetNamespace(), es.GetName()
	r := &aliasRecord{im: im, ns: ns, es: name, uid: string(es.GetUID()), aliases: map[string]bool{}}
	cm, err := im.cfg.Kube.CoreV1().ConfigMaps(im.cfg.AgentNamespace).Get(ctx, aliasRecordName(ns, name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return r, im.migrateAliases(ctx, es, r, esClient)
	case err != nil:
		return nil, fmt.Errorf("failed to read the alias record %s/%s: %w", im.cfg.AgentNamespace, aliasRecordName(ns, name), err)
	}
	r.cm = cm
	if cm.Data[recordKeyUID] != r.uid {
		im.log.Info("alias record of an earlier Elasticsearch of the same name dropped", "elasticsearch", ns+"/"+name)
		return r, r.save(ctx)
	}
	var list []string
	if err := json.Unmarshal([]byte(cm.Data[recordKeyAliases]), &list); err != nil {
		// Refuse to guess: a wrong guess could remove an alias someone else configured.
		return nil, fmt.Errorf("invalid alias record %s/%s: %w", im.cfg.AgentNamespace, cm.Name, err)
	}
	for _, a := range list {
		r.aliases[a] = true
	}
	return r, nil
}

// migrateAliases builds the record from what release 0.1.0 kept in the Elasticsearch's
// namespace, where a namespace user could have added an alias the agent never created. So an
// alias is adopted only with evidence that this agent configured it: it is set in Elasticsearch
// in proxy mode, a RemoteCluster of the Elasticsearch claims it, and that RemoteCluster's status
// (written by the agent only) reports the very proxy address Elasticsearch has for it. Anything
// else stays unrecorded, so the agent never removes it (at worst a link reports AliasConflict
// and its setting waits for a person). The old annotation is dropped with the next write of
// <es>-ecklink-remote-ca.
func (im *Importer) migrateAliases(ctx context.Context, es *unstructured.Unstructured, r *aliasRecord, esClient func() (*elastic.Client, error)) error {
	ns, name := es.GetNamespace(), es.GetName()
	legacy := map[string]bool{}
	cm, exists, err := im.getConfigMap(ctx, ns, name)
	if err != nil {
		return err
	}
	if exists {
		for _, a := range readJSONList(cm.Annotations, annotationAliases) {
			legacy[a] = true
		}
	}
	trust, err := im.trustStore().Read(ctx, es)
	if err != nil {
		return err
	}
	for owner := range trust.Owners {
		if alias, ok := strings.CutPrefix(owner, importOwnerPrefix); ok {
			legacy[alias] = true
		}
	}
	if len(legacy) == 0 {
		return nil
	}
	client, err := esClient()
	if err != nil {
		return err
	}
	current, err := client.GetRemoteSettings(ctx)
	if err != nil {
		return fmt.Errorf("failed to read remote cluster settings: %w", err)
	}
	claimed := map[string]string{} // alias -> proxy address a RemoteCluster's status reports
	for _, rc := range im.cfg.Cache.RemoteClusters() {
		if rc.Namespace == ns && rc.Spec.ElasticsearchRef.Name == name && rc.Status.ProxyAddress != "" {
			claimed[rc.Spec.Alias] = rc.Status.ProxyAddress
		}
	}
	for _, alias := range slices.Sorted(maps.Keys(legacy)) {
		s, set := current[alias]
		switch {
		case !set:
			// Gone already: nothing to adopt.
		case s.Mode == "proxy" && claimed[alias] != "" && claimed[alias] == s.ProxyAddress:
			r.aliases[alias] = true
		default:
			im.log.Warn("not adopting an alias listed by release 0.1.0's annotation: nothing shows this agent configured it, so it will never remove it",
				"elasticsearch", ns+"/"+name, "alias", alias)
		}
	}
	im.log.Info("alias record migrated from release 0.1.0's annotations", "elasticsearch", ns+"/"+name, "aliases", len(r.aliases), "listed", len(legacy))
	return r.save(ctx)
}

// releaseAliases removes the settings of recorded aliases that no RemoteCluster of the
// Elasticsearch wants any more (their settings first, then, in the passes that follow, their
// trust and credentials), and forgets them.
func (im *Importer) releaseAliases(ctx context.Context, rec *aliasRecord, wanted map[string]bool, esClient func() (*elastic.Client, error)) error {
	for _, alias := range rec.list() {
		if wanted[alias] {
			continue
		}
		client, err := esClient()
		if err != nil {
			return err
		}
		if _, err := client.DeleteRemote(ctx, alias); err != nil {
			return fmt.Errorf("failed to remove remote cluster %s: %w", alias, err)
		}
		im.log.Info("remote cluster settings removed", "elasticsearch", rec.ns+"/"+rec.es, "alias", alias)
		if err := rec.remove(ctx, alias); err != nil {
			return err
		}
	}
	return nil
}

// forgetAliases deletes the record of an Elasticsearch that is gone (its settings went with it).
func (im *Importer) forgetAliases(ctx context.Context, ns, es string) error {
	name := aliasRecordName(ns, es)
	if err := im.cfg.Kube.CoreV1().ConfigMaps(im.cfg.AgentNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete ConfigMap %s/%s: %w", im.cfg.AgentNamespace, name, err)
	}
	return nil
}
