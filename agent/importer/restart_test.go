package importer

import (
	"maps"
	"testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestRestartKeepsWhatIsApplied: an agent that restarted holds no answer until the peer sends
// its credentials again; its passes meanwhile keep the key, the CA and the settings. Credentials
// resent with the key id only (the peer lost the secret of a key the Secret holds) keep the
// value in the Secret; the id of a key whose value the agent never had leaves the last key in
// place and says the peer must resend it.
func TestRestartKeepsWhatIsApplied(t *testing.T) {
	ca := newTestCA(t, "west-transport")
	for _, tc := range []struct {
		name string
		// resend is what the peer sends after the restart (nil: nothing yet).
		resend *peerv1.Credentials
		// reason is CredentialsApplied's reason after the pass ("" : not checked).
		reason string
	}{
		{name: "nothing resent yet", reason: v1alpha1.ReasonWaitingForPeer},
		{name: "same key, id only", resend: func() *peerv1.Credentials {
			c := apiKeyCredentials("logs", "key-1", ca)
			c.ApiKeyEncoded = ""
			return c
		}()},
		{name: "another key, id only", resend: func() *peerv1.Credentials {
			c := apiKeyCredentials("logs", "key-2", ca)
			c.ApiKeyEncoded = ""
			return c
		}(), reason: v1alpha1.ReasonWaitingForPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAppliedWithCA(t, ca)
			// The restarted agent reads its objects from the informer cache only.
			want := f.applied(t)
			waitCache(t, func() bool {
				s, ok := f.im.cfg.Cache.OwnSecret(fxNS, wiring.CredentialsSecretName(fxES))
				cm, ok2 := f.im.cfg.Cache.OwnConfigMap(fxNS, wiring.CAConfigMapName(fxES))
				return ok && ok2 && maps.Equal(s.Annotations, want.secret.Annotations) && maps.Equal(cm.Data, want.cm.Data)
			})

			// The restart: a new Importer over the same cluster, with nothing received.
			im, err := New(f.im.cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.im = im
			if tc.resend != nil {
				if err := f.im.OnCredentials(fxPeer, 2, tc.resend); err != nil {
					t.Fatalf("resent credentials refused: %v", err)
				}
			}
			f.reconcile(t)
			a := f.applied(t)
			a.wantKeyAndCA(t, ca, "after the restart")
			if s := a.settings["logs"]; s.ProxyAddress != testProxy {
				t.Errorf("settings after the restart %+v, want the link's kept", s)
			}
			if tc.reason != "" {
				if got := f.reasons(t, "logs")[v1alpha1.ConditionCredentialsApplied]; got != tc.reason {
					t.Errorf("CredentialsApplied %q, want %q", got, tc.reason)
				}
			}
		})
	}
}
