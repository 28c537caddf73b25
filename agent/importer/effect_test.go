package importer

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestKeyInEffectAfterTheRestart: a key written into the credentials Secret is in effect (the
// peer is told, so it can invalidate the old one) only once ECK's aggregated secure settings hold
// it and every node started after that; until then CredentialsApplied says the cluster is
// restarting and the link status names no applied key.
func TestKeyInEffectAfterTheRestart(t *testing.T) {
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	for _, tc := range []struct {
		name string
		// aggregated: ECK copied the key into <es>-es-secure-settings; started: the nodes'
		// start, relative to now.
		aggregated bool
		started    time.Duration
		inEffect   bool
	}{
		{name: "ECK has not copied the key", started: time.Minute},
		{name: "copied, nodes not restarted", aggregated: true, started: -time.Minute},
		{name: "copied, nodes restarted after", aggregated: true, started: time.Minute, inEffect: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", ""))
			f.connectAll()
			if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", newTestCA(t, "west-transport"))); err != nil {
				t.Fatal(err)
			}
			f.reconcile(t)
			f.settle(t)
			if tc.aggregated {
				now := metav1.Now()
				if _, err := f.kc.CoreV1().Secrets(fxNS).Create(t.Context(), &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: eck.SecureSettingsSecret(fxES), Labels: map[string]string{eck.ClusterNameLabel: fxES},
						CreationTimestamp: now, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "elastic-operator", Time: &now}}},
					Data: map[string][]byte{wiring.CredentialsKey("logs"): []byte(encodedKey("key-1"))},
				}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			f.node.SetStartTime(time.Now().Add(tc.started))
			f.reconcile(t)
			ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
			reason := f.reasons(t, "logs")[v1alpha1.ConditionCredentialsApplied]
			if tc.inEffect {
				if ls.GetAppliedApiKeyId() != "key-1" || reason != v1alpha1.ReasonApplied {
					t.Errorf("applied key %q, CredentialsApplied %q: want key-1 in effect, Applied", ls.GetAppliedApiKeyId(), reason)
				}
				return
			}
			if ls.GetAppliedApiKeyId() != "" || ls.GetWrittenApiKeyId() != "key-1" || reason != v1alpha1.ReasonElasticsearchRestarting {
				t.Errorf("applied %q written %q, CredentialsApplied %q: want key-1 written, not in effect, ElasticsearchRestarting",
					ls.GetAppliedApiKeyId(), ls.GetWrittenApiKeyId(), reason)
			}
		})
	}
}
