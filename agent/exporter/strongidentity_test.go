package exporter

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestStrongIdentityRefusal(t *testing.T) {
	export := func(mode v1alpha1.StrongIdentityMode) *v1alpha1.ClusterExport {
		return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Name: "logs"}, Spec: v1alpha1.ClusterExportSpec{StrongIdentity: mode}}
	}
	for _, tc := range []struct {
		name            string
		mode            v1alpha1.StrongIdentityMode
		exported, local string
		signing         bool   // the import request carries a signing CA and subject
		want            string // "" goes ahead; else a part of the refusal message
	}{
		{name: "unset", exported: "9.3.0", local: "9.3.0"},
		{name: "disabled", mode: v1alpha1.StrongIdentityDisabled, exported: "8.19.2", local: "9.3.0"},
		{name: "required, exported 8.x", mode: v1alpha1.StrongIdentityRequired, exported: "8.19.2", local: "9.3.0",
			want: "the exported Elasticsearch runs 8.19.2, it needs 9.3 or later on both sides"},
		{name: "required, consumer 9.2", mode: v1alpha1.StrongIdentityRequired, exported: "9.3.1", local: "9.2.4",
			want: "the consuming Elasticsearch runs 9.2.4"},
		{name: "required, consumer version unknown", mode: v1alpha1.StrongIdentityRequired, exported: "9.3.1", local: "",
			want: "the version of the consuming Elasticsearch is unknown"},
		{name: "required, both 9.3+", mode: v1alpha1.StrongIdentityRequired, exported: "9.3.0", local: "10.0.0-SNAPSHOT", signing: true},
		{name: "required, both 9.3+, consumer agent without signing", mode: v1alpha1.StrongIdentityRequired, exported: "9.3.0", local: "9.3.0",
			want: "the consuming agent sent no signing CA or subject"},
		// Preferred never refuses: it falls back (TestStrongIdentityMode).
		{name: "preferred, exported 8.x", mode: v1alpha1.StrongIdentityPreferred, exported: "8.19.2", local: "9.3.0"},
		{name: "preferred, consumer agent without signing", mode: v1alpha1.StrongIdentityPreferred, exported: "9.3.0", local: "9.3.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &peerv1.ImportRequest{ElasticsearchVersion: tc.local}
			if tc.signing {
				req.SigningCaBundle, req.SigningSubject = []byte("pem"), "CN=ccs.apps.east,OU=ecklink-signing"
			}
			ref := strongIdentityRefusal(export(tc.mode), tc.exported, req)
			switch {
			case tc.want == "" && ref != nil:
				t.Fatalf("refused: %v", ref)
			case tc.want != "" && (ref == nil || ref.Reason != v1alpha1.ReasonStrongIdentityUnavailable || !strings.Contains(ref.Message, tc.want)):
				t.Fatalf("got %v, want a refusal with %q", ref, tc.want)
			}
		})
	}
}

func TestStrongIdentityMode(t *testing.T) {
	for _, tc := range []struct {
		name            string
		mode            v1alpha1.StrongIdentityMode
		exported, local string
		signing         bool
		use             bool
		why             string // a part of the reason it cannot, "" for none
	}{
		{name: "unset, both 9.3+", exported: "9.3.0", local: "9.3.0", signing: true},
		{name: "disabled, both 9.3+", mode: v1alpha1.StrongIdentityDisabled, exported: "9.3.0", local: "9.3.0", signing: true},
		{name: "preferred, both 9.3+", mode: v1alpha1.StrongIdentityPreferred, exported: "9.3.0", local: "9.4.1", signing: true, use: true},
		{name: "preferred, consumer 8.x", mode: v1alpha1.StrongIdentityPreferred, exported: "9.3.0", local: "8.19.2", signing: true,
			why: "the consuming Elasticsearch runs 8.19.2, it needs 9.3 or later on both sides"},
		{name: "preferred, exported 9.2", mode: v1alpha1.StrongIdentityPreferred, exported: "9.2.4", local: "9.3.0", signing: true,
			why: "the exported Elasticsearch runs 9.2.4"},
		{name: "preferred, consumer agent without signing", mode: v1alpha1.StrongIdentityPreferred, exported: "9.3.0", local: "9.3.0",
			why: "the consuming agent sent no signing CA or subject"},
		{name: "required, both 9.3+", mode: v1alpha1.StrongIdentityRequired, exported: "9.3.0", local: "9.3.0", signing: true, use: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &peerv1.ImportRequest{ElasticsearchVersion: tc.local}
			if tc.signing {
				req.SigningCaBundle, req.SigningSubject = []byte("pem"), "CN=ccs.apps.east,OU=ecklink-signing"
			}
			exp := &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Name: "logs"}, Spec: v1alpha1.ClusterExportSpec{StrongIdentity: tc.mode}}
			use, why := strongIdentityMode(exp, tc.exported, req)
			if use != tc.use || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
				t.Fatalf("strongIdentityMode = %v, %q; want %v, %q", use, why, tc.use, tc.why)
			}
		})
	}
}
