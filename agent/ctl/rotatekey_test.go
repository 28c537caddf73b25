package ctl

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/signing"
)

// keyRC is a connected RemoteCluster of the API-key model whose key in effect is key-1.
func keyRC(model v1alpha1.SecurityModel) *v1alpha1.RemoteCluster {
	return &v1alpha1.RemoteCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindRemoteCluster},
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "west-logs"},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: "west-logs", Peer: "west",
			Export: v1alpha1.ExportReference{Namespace: "logs", Name: "logs"}, Model: model},
		Status: v1alpha1.RemoteClusterStatus{APIKey: &v1alpha1.AppliedAPIKey{ID: "key-1"},
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionConnected, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonRemoteConnected}}},
	}
}

// fakeKeyAgent plays both agents: once the RemoteCluster carries a rotation request, it reports
// the new key written, then in effect for that request.
func fakeKeyAgent(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		step := 0
		for ctx.Err() == nil && step < 2 {
			time.Sleep(20 * time.Millisecond)
			rc, err := e.crds.RemoteClusters().Get(ctx, "apps", "west-logs")
			req := rc.GetAnnotations()[v1alpha1.AnnotationRotateKeyRequest]
			if err != nil || req == "" {
				continue
			}
			_, err = e.crds.RemoteClusters().UpdateStatus(ctx, rc, func(rc *v1alpha1.RemoteCluster) error {
				if step == 0 {
					rc.Status.Conditions = append(rc.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionCredentialsApplied, Status: metav1.ConditionFalse,
						Reason: v1alpha1.ReasonElasticsearchRestarting, Message: "API key key-2 written to Secret ccs-ecklink-remote-credentials; waiting for ECK to restart Elasticsearch"})
				} else {
					rc.Status.Conditions = rc.Status.Conditions[:1]
					rc.Status.APIKey = &v1alpha1.AppliedAPIKey{ID: "key-2", RotationRequest: req}
				}
				return nil
			})
			if err == nil {
				step++
				time.Sleep(1100 * time.Millisecond) // one poll sees each step
			}
		}
	}()
}

func TestRotateKey(t *testing.T) {
	requestID := testNow.Format(time.RFC3339Nano)
	tests := []struct {
		name      string
		rc        *v1alpha1.RemoteCluster
		args      []string
		agent     bool
		wantCode  int
		wantOut   string
		wantErr   []string
		wantAnnot map[string]string // "" means absent
	}{
		{
			name: "make-before-break, without waiting", rc: keyRC(""), args: []string{"apps/west-logs", "--wait=false"},
			wantOut:   "rotation of the API key of apps/west-logs requested; follow it with",
			wantErr:   []string{"rotation of the API key of apps/west-logs (alias west-logs, peer west) requested (request " + requestID + ")"},
			wantAnnot: map[string]string{v1alpha1.AnnotationRotateKeyRequest: requestID, v1alpha1.AnnotationRotateKeyInvalidateOld: ""},
		},
		{
			name: "waits until the new key is in effect, with progress", rc: keyRC(""), args: []string{"west-logs"}, agent: true,
			wantOut: "rotated the API key of apps/west-logs: key-1 -> key-2, in effect (connected)\n",
			wantErr: []string{"waiting for the new API key of apps/west-logs: waiting for environment west to send a new key",
				"waiting for the new API key of apps/west-logs: new key received: API key key-2 written",
				"the new API key of apps/west-logs: done after"},
		},
		{
			name: "emergency: says it disconnects", rc: keyRC(v1alpha1.SecurityModelAPIKey), args: []string{"apps/west-logs", "--invalidate-old-now", "--wait=false"},
			wantErr:   []string{"--invalidate-old-now: environment west invalidates key key-1 as soon as the new key exists; alias west-logs is DISCONNECTED until the new key is in effect here"},
			wantAnnot: map[string]string{v1alpha1.AnnotationRotateKeyRequest: requestID, v1alpha1.AnnotationRotateKeyInvalidateOld: "true"},
		},
		{
			name: "the peer does not answer: not ready after --timeout", rc: keyRC(""), args: []string{"apps/west-logs", "--timeout", "10ms"},
			wantCode: ExitNotReady, wantErr: []string{"gave up waiting for the new API key of apps/west-logs after 10ms: waiting for environment west to send a new key"},
		},
		{
			name: "certificate model: no key", rc: keyRC(v1alpha1.SecurityModelCertificate), args: []string{"apps/west-logs"},
			wantCode: ExitFailed, wantErr: []string{"uses the certificate model: it has no API key to rotate"},
			wantAnnot: map[string]string{v1alpha1.AnnotationRotateKeyRequest: ""},
		},
		{
			name: "no such RemoteCluster", rc: keyRC(""), args: []string{"apps/other"},
			wantCode: ExitFailed, wantErr: []string{"no RemoteCluster apps/other in"},
		},
		{
			name: "needs the RemoteCluster", rc: keyRC(""), args: nil,
			wantCode: ExitUsage, wantErr: []string{"accepts 1 arg(s), received 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fakeEnv(t, nil, tt.rc)
			if tt.agent {
				fakeKeyAgent(t, e)
			}
			runRotate(t, e, "key", tt.args, tt.wantCode, tt.wantOut, tt.wantErr...)
			rc, err := e.crds.RemoteClusters().Get(context.Background(), "apps", "west-logs")
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.wantAnnot {
				if got := rc.GetAnnotations()[k]; got != want {
					t.Errorf("annotation %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestRotateKeyJSON: -o json reports the old and new key ids and the request, never a secret.
func TestRotateKeyJSON(t *testing.T) {
	e := fakeEnv(t, nil, keyRC(""))
	fakeKeyAgent(t, e)
	code, out, errOut := runCtl(t, map[string]*env{"east": e}, "rotate", "key", "apps/west-logs", "--context", "east", "-o", "json")
	var res rotateKeyResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("exit %d (%v): %s%s", code, err, out, errOut)
	}
	want := rotateKeyResult{RemoteCluster: "apps/west-logs", Alias: "west-logs", Peer: "west", Request: testNow.Format(time.RFC3339Nano),
		OldKey: "key-1", NewKey: "key-2", Done: true, Connected: true}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

// fakeSigningAgent answers the first signing rotation request it sees with status st.
func fakeSigningAgent(t *testing.T, e *env, st signing.RotationStatus) {
	fakeCAAgent(t, e, signing.AnnotationRotateRequest, signing.AnnotationRotateStatus, st)
}

func TestRotateSigning(t *testing.T) {
	requestID := testNow.Format(time.RFC3339Nano)
	tests := []struct {
		name        string
		noConfigMap bool
		args        []string
		agent       *signing.RotationStatus
		wantCode    int
		wantOut     string
		wantErr     string
	}{
		{
			name: "request without waiting", args: []string{"--wait=false"},
			wantOut: "rotation of the signing CA of east requested; the agent reports on it in the annotation ecklink.io/rotate-signing-status",
			wantErr: "rotation of the signing CA of east requested (request " + requestID + ")",
		},
		{
			name:    "waits until the new CA signs",
			agent:   &signing.RotationStatus{Phase: signing.RotationDone, Message: "the new signing CA signs", OldCA: "aaaaaaaaaaaaaaaaaaaa", NewCA: "bbbbbbbbbbbbbbbbbbbb"},
			wantOut: "rotated the signing CA of east: aaaaaaaaaaaaaaaa -> bbbbbbbbbbbbbbbb\nthe new signing CA signs\n",
		},
		{
			name:  "json output",
			agent: &signing.RotationStatus{Phase: signing.RotationDone, Message: "m", OldCA: "o", NewCA: "n"},
			args:  []string{"-o", "json"},
			wantOut: `{
  "environment": "east",
  "request": "` + requestID + `",
  "phase": "Done",
  "message": "m",
  "oldCA": "o",
  "newCA": "n"
}`,
		},
		{
			name:     "the agent has no signing CA",
			agent:    &signing.RotationStatus{Phase: signing.RotationFailed, Message: "this agent has no signing CA"},
			wantCode: ExitFailed, wantErr: "the agent refused the signing CA rotation request: this agent has no signing CA",
		},
		{
			name: "the agent does not answer", args: []string{"--timeout", "10ms"},
			wantCode: ExitNotReady, wantErr: "gave up waiting for the rotation of the signing CA after 10ms: the agent has not taken the request up yet",
		},
		{
			name: "no agent", noConfigMap: true, args: []string{"--wait=false"},
			wantCode: ExitFailed, wantErr: "has no agent identity (ConfigMap ecklink/ecklink-agent-identity)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := rotationEnv(t, tt.noConfigMap, nil)
			if tt.agent != nil {
				fakeSigningAgent(t, e, *tt.agent)
			}
			runRotate(t, e, "signing", tt.args, tt.wantCode, tt.wantOut, tt.wantErr)
			if tt.noConfigMap {
				return
			}
			if got := rotationAnnotations(t, e)[signing.AnnotationRotateRequest]; got != requestID {
				t.Errorf("request annotation = %q, want %q", got, requestID)
			}
		})
	}
}
