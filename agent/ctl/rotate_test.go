package ctl

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/identity"
)

// rotationCM is east's identity ConfigMap with annotations.
// rotationEnv is cluster east whose agent identity ConfigMap carries annotations, or without
// that ConfigMap (noConfigMap).
func rotationEnv(t *testing.T, noConfigMap bool, annotations map[string]string) *env {
	t.Helper()
	var objs []runtime.Object
	if !noConfigMap {
		cm := identityConfigMap(t, "east", []string{"10.0.0.1:9400"}, "agent-east")
		cm.Annotations = annotations
		objs = append(objs, cm)
	}
	return fakeEnv(t, objs)
}

// rotationAnnotations are the annotations of the agent identity ConfigMap of e.
func rotationAnnotations(t *testing.T, e *env) map[string]string {
	t.Helper()
	cm, err := e.kube.CoreV1().ConfigMaps(agentNS).Get(context.Background(), identity.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.Annotations
}

// runRotate runs "rotate what --context east args..." against e and fails t unless it exits
// with wantCode, its stdout holding wantOut and its stderr each of wantErr.
func runRotate(t *testing.T, e *env, what string, args []string, wantCode int, wantOut string, wantErr ...string) {
	t.Helper()
	code, out, errOut := runCtl(t, map[string]*env{"east": e}, append([]string{"rotate", what, "--context", "east"}, args...)...)
	ok := code == wantCode && contains(out, wantOut)
	for _, w := range wantErr {
		ok = ok && contains(errOut, w)
	}
	if !ok {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, %q, %q", code, out, errOut, wantCode, wantOut, wantErr)
	}
}

func statusJSON(t *testing.T, st identity.RotationStatus) string {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeAgent answers the first rotation request it sees with status st, as the agent would.
func fakeAgent(t *testing.T, e *env, st identity.RotationStatus) {
	fakeCAAgent(t, e, identity.AnnotationRotateRequest, identity.AnnotationRotateStatus, st)
}

// fakeCAAgent answers the first CA rotation request it sees in annotation requestKey of the
// identity ConfigMap with status st in annotation statusKey.
func fakeCAAgent(t *testing.T, e *env, requestKey, statusKey string, st identity.RotationStatus) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			cm, err := e.kube.CoreV1().ConfigMaps(agentNS).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
			if err == nil && cm.Annotations[requestKey] != "" {
				st.Request = cm.Annotations[requestKey]
				cm.Annotations[statusKey] = statusJSON(t, st)
				if _, err := e.kube.CoreV1().ConfigMaps(agentNS).Update(ctx, cm, metav1.UpdateOptions{}); err == nil {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

func TestRotateIdentity(t *testing.T) {
	requestID := testNow.Format(time.RFC3339Nano)
	tests := []struct {
		name        string
		annotations map[string]string
		noConfigMap bool
		args        []string
		agent       *identity.RotationStatus
		wantCode    int
		wantOut     string
		wantErr     string
		// wantAnnotations are expected on the ConfigMap afterwards ("" means absent).
		wantAnnotations map[string]string
	}{
		{
			name: "request without waiting", args: []string{"--wait=false", "--retire-old"},
			wantOut:         "rotation of the agent CA of east requested",
			wantErr:         "rotation of the agent CA of east requested (request " + requestID + ")",
			wantAnnotations: map[string]string{identity.AnnotationRotateRequest: requestID, identity.AnnotationRotateRetireOld: "true"},
		},
		{
			name:            "waits until the agent is done",
			agent:           &identity.RotationStatus{Phase: identity.RotationDone, Message: "the new CA signs and no peer trusts the old one any more", OldCA: "aaaaaaaaaaaaaaaaaaaa", NewCA: "bbbbbbbbbbbbbbbbbbbb"},
			wantOut:         "rotated the agent CA of east: aaaaaaaaaaaaaaaa -> bbbbbbbbbbbbbbbb\nthe new CA signs and no peer trusts the old one any more\n",
			wantAnnotations: map[string]string{identity.AnnotationRotateRequest: requestID, identity.AnnotationRotateRetireOld: ""},
		},
		{
			name:     "the agent refuses the request",
			agent:    &identity.RotationStatus{Phase: identity.RotationFailed, Message: "annotation ecklink.io/rotate-request: want at most 64 printable characters"},
			wantCode: ExitFailed, wantErr: "the agent refused the rotation request: annotation ecklink.io/rotate-request",
		},
		{
			name: "a rotation under way is followed, and told to retire the old CA",
			annotations: map[string]string{identity.AnnotationRotateRequest: "r0",
				identity.AnnotationRotateStatus: `{"request":"r0","phase":"Staged","message":"waiting for peers west"}`},
			args:            []string{"--wait=false", "--retire-old"},
			wantErr:         "a rotation of the agent CA of east is under way (request r0): following it",
			wantAnnotations: map[string]string{identity.AnnotationRotateRequest: "r0", identity.AnnotationRotateRetireOld: "true"},
		},
		{
			name: "a finished rotation is not followed: a new one is requested",
			annotations: map[string]string{identity.AnnotationRotateRequest: "r0", identity.AnnotationRotateRetireOld: "true",
				identity.AnnotationRotateStatus: `{"request":"r0","phase":"Done"}`},
			args:            []string{"--wait=false"},
			wantAnnotations: map[string]string{identity.AnnotationRotateRequest: requestID, identity.AnnotationRotateRetireOld: ""},
		},
		{
			name: "the agent does not answer: not ready after --timeout", args: []string{"--timeout", "10ms"},
			wantCode: ExitNotReady, wantErr: "gave up waiting for the rotation of the agent CA after 10ms: the agent has not taken the request up yet",
		},
		{
			name: "no agent", noConfigMap: true, args: []string{"--wait=false"},
			wantCode: ExitFailed, wantErr: "has no agent identity (ConfigMap ecklink/ecklink-agent-identity): is the agent installed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := rotationEnv(t, tt.noConfigMap, tt.annotations)
			if tt.agent != nil {
				fakeAgent(t, e, *tt.agent)
			}
			runRotate(t, e, "identity", tt.args, tt.wantCode, tt.wantOut, tt.wantErr)
			if tt.noConfigMap {
				return
			}
			annotations := rotationAnnotations(t, e)
			for k, want := range tt.wantAnnotations {
				if got := annotations[k]; got != want {
					t.Errorf("annotation %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}
