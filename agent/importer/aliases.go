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
// are the only ones it ever removes. They are recorded in the agent's own namespace, in one
// ConfigMap (aliasRecordName) with an entry per local Elasticsearch, where a user of the
// Elasticsearch's namespace cannot add someone else's alias to make the agent delete it. One
// object with a fixed name, so that the agent's Role can name it. Release 0.1.0 kept the list in
// the user's namespace (an annotation of <es>-ecklink-remote-ca, and the import/<alias> owners of
// the transport CA ConfigMap); the first reconcile of an Elasticsearch without an entry migrates
// that list, adopting only the aliases it can show the agent configured (see migrateAliases). An
// alias is recorded before its settings are written and forgotten after they are removed, so a
// crash in between leaves nothing that nobody removes.

// aliasRecordName is the ConfigMap, in the agent's namespace, of the aliases the agent configured.
const aliasRecordName = "ecklink-aliases"

// maxRecordAttempts bounds the retries of a record write that conflicts with another worker's
// (each worker writes only the entry of the Elasticsearch it reconciles).
const maxRecordAttempts = 8

// recordKey is the entry of Elasticsearch es in namespace ns: <namespace>.<elasticsearch> (both
// DNS labels, so the dot makes it unique).
func recordKey(ns, es string) string { return ns + "." + es }

// recordEntry is one Elasticsearch's entry: its UID (an entry of a deleted Elasticsearch says
// nothing about a new one of the same name) and the aliases, sorted.
type recordEntry struct {
	UID     string   `json:"uid"`
	Aliases []string `json:"aliases"`
}

// aliasRecord is the set of aliases the agent created in one local Elasticsearch.
type aliasRecord struct {
	im      *Importer
	ns, es  string
	uid     string
	aliases map[string]bool
}

// has reports whether the agent created alias.
func (r *aliasRecord) has(alias string) bool { return r.aliases[alias] }

// list returns the recorded aliases, sorted.
func (r *aliasRecord) list() []string { return slices.Sorted(maps.Keys(r.aliases)) }

// addAll records aliases (those not recorded yet) with one write of the record.
func (r *aliasRecord) addAll(ctx context.Context, aliases []string) error {
	added := false
	for _, alias := range aliases {
		if !r.aliases[alias] {
			r.aliases[alias] = true
			added = true
		}
	}
	if !added {
		return nil
	}
	return r.save(ctx)
}

// remove forgets alias after its settings are gone. An entry without aliases stays until its
// Elasticsearch goes: it says the migration from 0.1.0 is done.
func (r *aliasRecord) remove(ctx context.Context, alias string) error {
	if !r.aliases[alias] {
		return nil
	}
	delete(r.aliases, alias)
	return r.save(ctx)
}

// save writes the Elasticsearch's entry.
func (r *aliasRecord) save(ctx context.Context) error {
	data, _ := json.Marshal(recordEntry{UID: r.uid, Aliases: append([]string{}, r.list()...)})
	return r.im.writeRecordEntry(ctx, recordKey(r.ns, r.es), string(data))
}

// writeRecordEntry sets (or, with value "", deletes) one entry of the record, re-reading it on a
// conflict with another worker's write.
func (im *Importer) writeRecordEntry(ctx context.Context, key, value string) error {
	client := im.cfg.Kube.CoreV1().ConfigMaps(im.cfg.AgentNamespace)
	var err error
	for range maxRecordAttempts {
		var cm *corev1.ConfigMap
		cm, err = client.Get(ctx, aliasRecordName, metav1.GetOptions{})
		exists := err == nil
		switch {
		case apierrors.IsNotFound(err):
			if value == "" {
				return nil
			}
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: aliasRecordName, Namespace: im.cfg.AgentNamespace,
				Labels: map[string]string{cache.ManagedByLabel: cache.ManagedByValue}}}
		case err != nil:
			return fmt.Errorf("failed to read the alias record %s/%s: %w", im.cfg.AgentNamespace, aliasRecordName, err)
		}
		if cm.Data[key] == value {
			return nil
		}
		cm = cm.DeepCopy()
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		if value == "" {
			delete(cm.Data, key)
		} else {
			cm.Data[key] = value
		}
		if exists {
			_, err = client.Update(ctx, cm, metav1.UpdateOptions{})
		} else {
			_, err = client.Create(ctx, cm, metav1.CreateOptions{})
		}
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("failed to save the alias record %s/%s: %w", im.cfg.AgentNamespace, aliasRecordName, err)
	}
	return nil
}

// loadAliases reads the entry of a local Elasticsearch. Without one, it migrates 0.1.0's
// annotations (which needs the Elasticsearch's settings, read only then); an entry of an earlier
// Elasticsearch of the same name is dropped.
func (im *Importer) loadAliases(ctx context.Context, es *unstructured.Unstructured, esClient func() (*elastic.Client, error)) (*aliasRecord, error) {
	ns, name := es.GetNamespace(), es.GetName()
	r := &aliasRecord{im: im, ns: ns, es: name, uid: string(es.GetUID()), aliases: map[string]bool{}}
	cm, err := im.cfg.Kube.CoreV1().ConfigMaps(im.cfg.AgentNamespace).Get(ctx, aliasRecordName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("failed to read the alias record %s/%s: %w", im.cfg.AgentNamespace, aliasRecordName, err)
	}
	raw, ok := "", false
	if err == nil {
		raw, ok = cm.Data[recordKey(ns, name)]
	}
	if !ok {
		return r, im.migrateAliases(ctx, es, r, esClient)
	}
	var entry recordEntry
	if err := json.Unmarshal([]byte(raw), &entry); err != nil {
		// Refuse to guess: a wrong guess could remove an alias someone else configured.
		return nil, fmt.Errorf("invalid entry %s of the alias record %s/%s: %w", recordKey(ns, name), im.cfg.AgentNamespace, aliasRecordName, err)
	}
	if entry.UID != r.uid {
		im.log.Info("alias record of an earlier Elasticsearch of the same name dropped", "elasticsearch", ns+"/"+name)
		return r, r.save(ctx)
	}
	for _, a := range entry.Aliases {
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
	for _, rc := range im.cfg.Cache.RemoteClustersSharedOf(ns, name) {
		if rc.Status.ProxyAddress != "" {
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

// forgetAliases drops the entry of an Elasticsearch that is gone (its settings went with it).
func (im *Importer) forgetAliases(ctx context.Context, ns, es string) error {
	return im.writeRecordEntry(ctx, recordKey(ns, es), "")
}
