package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/test/harness"
)

// aliasRecord reads the agent's record of the aliases it configured in l's local Elasticsearch
// (nil when it has no entry).
func (l *link) aliasRecord(ctx context.Context, t *testing.T) []string {
	t.Helper()
	cm, err := l.local.Env.Kube.CoreV1().ConfigMaps(harness.AgentNamespace).Get(ctx, "ecklink-aliases", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := cm.Data[l.ns+".ccs"]
	if !ok {
		return nil
	}
	var entry struct{ Aliases []string }
	if err := json.Unmarshal([]byte(raw), &entry); err != nil {
		t.Fatalf("record entry %s: %v", raw, err)
	}
	return append([]string{}, entry.Aliases...)
}

// forgetRecord removes l's entry from the record, as if the agent had just been upgraded from
// 0.1.0, which kept none.
func (l *link) forgetRecord(ctx context.Context, t *testing.T) {
	t.Helper()
	cms := l.local.Env.Kube.CoreV1().ConfigMaps(harness.AgentNamespace)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, "ecklink-aliases", metav1.GetOptions{})
		if err != nil {
			return err
		}
		delete(cm.Data, l.ns+".ccs")
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestNamespaceUserCannotListAnAlias: the aliases the agent configured are recorded in its own
// namespace. A user of the Elasticsearch's namespace, who can edit the agent's ConfigMaps there,
// lists someone else's alias (users-own) where release 0.1.0 kept the agent's aliases (the
// annotation of ccs-ecklink-remote-ca, the owners of the transport CA ConfigMap), while the
// agent migrates from them (the record is gone, as after an upgrade from 0.1.0). The migrated
// record holds the agent's alias only, and when the RemoteCluster goes, the agent removes its own
// alias and leaves users-own.
func TestNamespaceUserCannotListAnAlias(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "aliases", "west-al", nil, nil)
	addUserAlias(ctx, t, l)
	l.connect(ctx, t).Stop()
	if got := l.aliasRecord(ctx, t); !slices.Equal(got, []string{"west-al"}) {
		t.Fatalf("alias record %v, want [west-al]", got)
	}
	cm, err := l.localConfigMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := cm.Annotations["ecklink.io/managed-aliases"]; ok {
		t.Errorf("ccs-ecklink-remote-ca still carries the 0.1.0 list of aliases: %s", v)
	}

	// The record goes as if the agent had just been upgraded from 0.1.0, and the namespace
	// user lists users-own where 0.1.0 listed the agent's aliases.
	kube := l.local.Env.Kube.CoreV1()
	l.forgetRecord(ctx, t)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := l.localConfigMap(ctx)
		if err != nil {
			return err
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations["ecklink.io/managed-aliases"] = `["users-own","west-al"]`
		_, err = kube.ConfigMaps(l.ns).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.ConfigMaps(l.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "ccs-ecklink-transport-ca", Annotations: map[string]string{"ecklink.io/transport-cas": `{"import/users-own":[]}`}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, 30*time.Second, "the record migrated from the annotations", func() (bool, string) {
		got := l.aliasRecord(ctx, t)
		return got != nil, "no record yet"
	})
	if got := l.aliasRecord(ctx, t); !slices.Equal(got, []string{"west-al"}) {
		t.Fatalf("migrated alias record %v, want [west-al]: users-own was listed by the namespace user", got)
	}

	// The RemoteCluster goes: the agent's alias with it, users-own stays (requireRemoved).
	if err := l.local.CRDs.RemoteClusters().Delete(ctx, l.ns, l.alias); err != nil {
		t.Fatal(err)
	}
	l.requireRemoved(ctx, t, "after deleting the RemoteCluster")
	waitFor(ctx, t, 30*time.Second, "the alias forgotten", func() (bool, string) {
		got := l.aliasRecord(ctx, t)
		return len(got) == 0, "record holds " + strings.Join(got, ",")
	})
	if !slices.Contains(l.remoteAliases(), "users-own") {
		t.Error("users-own was removed")
	}
}
