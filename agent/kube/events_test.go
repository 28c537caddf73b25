package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

func TestConditionChanged(t *testing.T) {
	peer := &v1alpha1.Peer{ObjectMeta: metav1.ObjectMeta{Namespace: "ecklink", Name: "west"}}
	cases := []struct {
		name string
		c    metav1.Condition
		want string
	}{
		{name: "true is normal", c: metav1.Condition{Type: "Connected", Status: "True", Reason: "StreamEstablished"},
			want: "Normal StreamEstablished Connected is True"},
		{name: "false is a warning", c: metav1.Condition{Type: "Connected", Status: "False", Reason: "DialFailed", Message: "no route to host"},
			want: "Warning DialFailed Connected is False: no route to host"},
		{name: "unknown is a warning", c: metav1.Condition{Type: "TrustCurrent", Status: "Unknown", Reason: "Reconciling"},
			want: "Warning Reconciling TrustCurrent is Unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fr := record.NewFakeRecorder(1)
			NewRecorderFor(fr).ConditionChanged(peer, tc.c)
			if got := <-fr.Events; got != tc.want {
				t.Errorf("event = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEventMessageIsBounded(t *testing.T) {
	fr := record.NewFakeRecorder(1)
	NewRecorderFor(fr).Event(&v1alpha1.Peer{}, corev1.EventTypeWarning, "R", strings.Repeat("é", 1000))
	got := strings.TrimPrefix(<-fr.Events, "Warning R ")
	if len(got) > maxEventMessage || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "éé") {
		t.Errorf("message of %d bytes, want at most %d ending in ...", len(got), maxEventMessage)
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Error("truncation split a character")
	}
}

func TestRecordTransitions(t *testing.T) {
	fr := record.NewFakeRecorder(10)
	before := []metav1.Condition{{Type: "Connected", Status: "True", Reason: "A", Message: "m"}}
	after := []metav1.Condition{{Type: "Connected", Status: "True", Reason: "A", Message: "new message"},
		{Type: "Ready", Status: "False", Reason: "B"}}
	NewRecorderFor(fr).RecordTransitions(&v1alpha1.RemoteCluster{}, before, after)
	close(fr.Events)
	var got []string
	for e := range fr.Events {
		got = append(got, e)
	}
	if len(got) != 1 || got[0] != "Warning B Ready is False" {
		t.Errorf("events = %q, want only the Ready transition", got)
	}
}

// newFakeRecorder is a Recorder writing to a fake API server, shut down when t ends.
func newFakeRecorder(t *testing.T) (*Recorder, *fake.Clientset) {
	t.Helper()
	kube := fake.NewClientset()
	r, err := NewRecorder(t.Context(), RecorderConfig{Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Shutdown)
	return r, kube
}

// TestRecorderWritesEvents goes through the real broadcaster to a (fake) API server.
func TestRecorderWritesEvents(t *testing.T) {
	r, kube := newFakeRecorder(t)
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "eu", UID: "u1"}}
	r.ConditionChanged(rc, metav1.Condition{Type: "Connected", Status: "False", Reason: "RemoteNotConnected", Message: "timeout"})

	var events []corev1.Event
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		list, err := kube.CoreV1().Events("search").List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if events = list.Items; len(events) > 0 {
			break
		}
	}
	if len(events) != 1 {
		t.Fatalf("got %d events, want 1", len(events))
	}
	e := events[0]
	if e.Type != corev1.EventTypeWarning || e.Reason != "RemoteNotConnected" || e.Message != "Connected is False: timeout" ||
		e.Source.Component != Component || e.InvolvedObject.Kind != v1alpha1.KindRemoteCluster ||
		e.InvolvedObject.APIVersion != "ecklink.io/v1alpha1" || e.InvolvedObject.Name != "eu" {
		t.Errorf("event = %+v", e)
	}
}

func TestNewRecorderRequiresKube(t *testing.T) {
	if _, err := NewRecorder(t.Context(), RecorderConfig{}); err == nil {
		t.Fatal("want an error without Kube")
	}
}

// The recorder only creates Events: a repeated Event, which the broadcaster would patch, is
// written as a new one (the agent's RBAC grants create on Events and nothing else).
func TestRecorderOnlyCreatesEvents(t *testing.T) {
	r, kube := newFakeRecorder(t)
	peer := &v1alpha1.Peer{ObjectMeta: metav1.ObjectMeta{Namespace: "ecklink", Name: "west", UID: "u1"}}
	for range 3 {
		r.Event(peer, corev1.EventTypeWarning, "DialFailed", "no route to host")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var creates, others int
		for _, a := range kube.Actions() {
			if a.GetResource().Resource != "events" {
				continue
			}
			if a.GetVerb() == "create" {
				creates++
			} else {
				others++
			}
		}
		if others > 0 {
			t.Fatalf("%d event requests other than create", others)
		}
		if creates == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events created, want 3", creates)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
