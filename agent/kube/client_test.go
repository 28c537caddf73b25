package kube

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

func newTestClient(t *testing.T, rec *Recorder, objs ...runtime.Object) (*Client, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	var us []runtime.Object
	for _, o := range objs {
		u, err := ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds, us...)
	c, err := NewClient(ClientConfig{Dynamic: dyn, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	return c, dyn
}

func testRemote(name string) *v1alpha1.RemoteCluster {
	return &v1alpha1.RemoteCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: name, Generation: 1},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"},
			Alias: name, Peer: "west", Export: v1alpha1.ExportReference{Namespace: "elastic", Name: "logs"}},
	}
}

func TestClientCRUD(t *testing.T) {
	ctx := t.Context()
	c, _ := newTestClient(t, nil, testExport())
	rcs := c.RemoteClusters()

	created, err := rcs.Create(ctx, testRemote("eu"))
	if err != nil {
		t.Fatal(err)
	}
	if created.Kind != v1alpha1.KindRemoteCluster || created.Spec.Alias != "eu" {
		t.Errorf("created = %+v", created)
	}
	if _, err := rcs.Create(ctx, testRemote("us")); err != nil {
		t.Fatal(err)
	}
	got, err := rcs.Get(ctx, "search", "eu")
	if err != nil {
		t.Fatal(err)
	}
	got.Spec.Wiring = v1alpha1.WiringManual
	if _, err := rcs.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ := rcs.Get(ctx, "search", "eu"); got.Spec.Wiring != v1alpha1.WiringManual {
		t.Errorf("wiring = %q after update, want manual", got.Spec.Wiring)
	}
	list, err := rcs.List(ctx, "", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("listed %d remote clusters, want 2", len(list))
	}
	if err := rcs.Delete(ctx, "search", "us"); err != nil {
		t.Fatal(err)
	}
	if _, err := rcs.Get(ctx, "search", "us"); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
	exports, err := c.ClusterExports().List(ctx, "elastic", metav1.ListOptions{})
	if err != nil || len(exports) != 1 || exports[0].Spec.Access == nil {
		t.Errorf("exports = %+v, %v; want the seeded export", exports, err)
	}
	if peers, err := c.Peers().List(ctx, "ecklink", metav1.ListOptions{}); err != nil || len(peers) != 0 {
		t.Errorf("peers = %+v, %v; want none", peers, err)
	}
}

func TestUpdateStatus(t *testing.T) {
	ctx := t.Context()
	fr := record.NewFakeRecorder(10)
	c, dyn := newTestClient(t, NewRecorderFor(fr), testRemote("eu"))
	rcs := c.RemoteClusters()
	obj, err := rcs.Get(ctx, "search", "eu")
	if err != nil {
		t.Fatal(err)
	}

	// The first write conflicts (another writer won); UpdateStatus reads again and retries.
	var conflicts, writes atomic.Int32
	dyn.PrependReactor("update", "remoteclusters", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		writes.Add(1)
		if conflicts.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(v1alpha1.Resource("remoteclusters"), "eu", errors.New("stale"))
		}
		return false, nil, nil
	})
	stored, err := rcs.UpdateStatus(ctx, obj, setConnected(metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected))
	if err != nil {
		t.Fatal(err)
	}
	if writes.Load() != 2 || stored.Status.ObservedGeneration != 1 || len(stored.Status.Conditions) != 1 {
		t.Errorf("writes = %d, status = %+v; want 2 writes and the condition stored", writes.Load(), stored.Status)
	}
	if e := <-fr.Events; e != "Warning RemoteNotConnected Connected is False" {
		t.Errorf("event = %q", e)
	}

	// No change: nothing is written and no Event recorded.
	if _, err := rcs.UpdateStatus(ctx, stored, setConnected(metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected)); err != nil {
		t.Fatal(err)
	}
	if writes.Load() != 2 {
		t.Errorf("writes = %d after a no-op, want 2", writes.Load())
	}

	// A transition to True is stored and recorded as Normal.
	stored, err = rcs.UpdateStatus(ctx, stored, setConnected(metav1.ConditionTrue, v1alpha1.ReasonRemoteConnected))
	if err != nil {
		t.Fatal(err)
	}
	if e := <-fr.Events; e != "Normal RemoteConnected Connected is True" {
		t.Errorf("event = %q", e)
	}
	if got, _ := rcs.Get(ctx, "search", "eu"); got.Status.Conditions[0].Status != metav1.ConditionTrue {
		t.Errorf("stored conditions = %+v", got.Status.Conditions)
	}
	select {
	case e := <-fr.Events:
		t.Errorf("unexpected event %q", e)
	default:
	}

	// mutate's error stops the update.
	boom := errors.New("boom")
	if _, err := rcs.UpdateStatus(ctx, stored, func(*v1alpha1.RemoteCluster) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

// setConnected is an UpdateStatus mutation: the Connected condition with status and reason, and
// the observed generation.
func setConnected(status metav1.ConditionStatus, reason string) func(*v1alpha1.RemoteCluster) error {
	return func(rc *v1alpha1.RemoteCluster) error {
		Set(rc, NewCondition(rc, v1alpha1.ConditionConnected, status, reason, ""))
		rc.Status.ObservedGeneration = rc.Generation
		return nil
	}
}

func TestNewClientRequiresDynamic(t *testing.T) {
	if _, err := NewClient(ClientConfig{}); err == nil {
		t.Fatal("want an error without Dynamic")
	}
}

// TestSameStatus: statuses compare by meaning (a time in another location is the same time), and
// only the status counts: what the status write leaves alone does not make a write.
func TestSameStatus(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	base := func() *v1alpha1.RemoteCluster {
		rc := &v1alpha1.RemoteCluster{}
		rc.Name = "eu"
		rc.Status.LastSync = &metav1.Time{Time: at}
		rc.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}}}
		return rc
	}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.RemoteCluster)
		same   bool
	}{
		{"unchanged", func(*v1alpha1.RemoteCluster) {}, true},
		{"time in another location", func(rc *v1alpha1.RemoteCluster) {
			rc.Status.LastSync = &metav1.Time{Time: at.In(time.FixedZone("CET", 3600))}
		}, true},
		{"metadata only", func(rc *v1alpha1.RemoteCluster) { rc.Labels = map[string]string{"a": "b"} }, true},
		{"another time", func(rc *v1alpha1.RemoteCluster) { rc.Status.LastSync = &metav1.Time{Time: at.Add(time.Second)} }, false},
		{"condition status", func(rc *v1alpha1.RemoteCluster) { rc.Status.Conditions[0].Status = metav1.ConditionFalse }, false},
		{"a field set", func(rc *v1alpha1.RemoteCluster) { rc.Status.ProxyAddress = "203.0.113.7:9443" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(b)
			if got := sameStatus(a, b); got != tc.same {
				t.Errorf("sameStatus = %v, want %v", got, tc.same)
			}
		})
	}
}

// TestUpdateStatusOverItsOwnWrite: callers pass an informer's copy, which may not hold the
// client's last write yet. A status that goes back to that stale copy's is still written (it
// differs from what is stored), a no-op against the client's own write writes nothing, and a
// copy newer than the write is used as it is.
func TestUpdateStatusOverItsOwnWrite(t *testing.T) {
	ctx := t.Context()
	fr := record.NewFakeRecorder(10)
	seed := testRemote("eu")
	seed.ResourceVersion = "1"
	seed.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionConnected, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonRemoteConnected, LastTransitionTime: metav1.Now()}}
	c, dyn := newTestClient(t, NewRecorderFor(fr), seed)
	rcs := c.RemoteClusters()
	// The fake keeps no resourceVersions: each status write stores the next one, as the API does.
	var version, writes atomic.Int32
	version.Store(1)
	dyn.PrependReactor("update", "remoteclusters", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			writes.Add(1)
			a.(k8stesting.UpdateAction).GetObject().(metav1.Object).SetResourceVersion(fmt.Sprint(version.Add(1)))
		}
		return false, nil, nil
	})
	stale, err := rcs.Get(ctx, "search", "eu")
	if err != nil {
		t.Fatal(err)
	}
	stored := func() metav1.ConditionStatus {
		got, err := rcs.Get(ctx, "search", "eu")
		if err != nil {
			t.Fatal(err)
		}
		return got.Status.Conditions[0].Status
	}

	for i, step := range []struct {
		status metav1.ConditionStatus
		reason string
		writes int32
		event  string
	}{
		{metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected, 1, "Warning RemoteNotConnected Connected is False"},
		{metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected, 1, ""}, // the same as written: no write
		{metav1.ConditionTrue, v1alpha1.ReasonRemoteConnected, 2, "Normal RemoteConnected Connected is True"},
		{metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected, 3, "Warning RemoteNotConnected Connected is False"},
	} {
		// Every step passes the copy read before the first write, as a lagging informer would.
		if _, err := rcs.UpdateStatus(ctx, stale, setConnected(step.status, step.reason)); err != nil {
			t.Fatal(err)
		}
		if writes.Load() != step.writes || stored() != step.status {
			t.Errorf("step %d: %d writes, stored %s; want %d writes, %s stored", i, writes.Load(), stored(), step.writes, step.status)
		}
		select {
		case e := <-fr.Events:
			if e != step.event {
				t.Errorf("step %d: event %q, want %q", i, e, step.event)
			}
		default:
			if step.event != "" {
				t.Errorf("step %d: no event, want %q", i, step.event)
			}
		}
	}

	// A copy the client is not known to have written over (the informer caught up, or someone
	// else wrote) is used as it is: here it says True, so setting True writes nothing.
	fresh, err := rcs.Get(ctx, "search", "eu")
	if err != nil {
		t.Fatal(err)
	}
	fresh.ResourceVersion = "100"
	Set(fresh, NewCondition(fresh, v1alpha1.ConditionConnected, metav1.ConditionTrue, v1alpha1.ReasonRemoteConnected, ""))
	if _, err := rcs.UpdateStatus(ctx, fresh, setConnected(metav1.ConditionTrue, v1alpha1.ReasonRemoteConnected)); err != nil {
		t.Fatal(err)
	}
	if writes.Load() != 3 {
		t.Errorf("%d writes after a pass over a newer copy that changes nothing, want 3", writes.Load())
	}
}

// TestWrittenStatusesAreForgotten: the copies of the client's own writes are dropped once
// expired even when the client writes nothing more (the prober's first round at 1,000 links,
// then silence), and the sweep stops when none are left.
func TestWrittenStatusesAreForgotten(t *testing.T) {
	ctx := t.Context()
	seed := testRemote("eu")
	seed.ResourceVersion = "1"
	c, _ := newTestClient(t, nil, seed)
	rcs := c.RemoteClusters()
	rcs.mu.Lock()
	rcs.ttl = 50 * time.Millisecond
	rcs.mu.Unlock()
	obj, err := rcs.Get(ctx, "search", "eu")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rcs.UpdateStatus(ctx, obj, setConnected(metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected)); err != nil {
		t.Fatal(err)
	}
	state := func() (int, bool) {
		rcs.mu.Lock()
		defer rcs.mu.Unlock()
		return len(rcs.written), rcs.sweep != nil
	}
	if n, armed := state(); n != 1 || !armed {
		t.Fatalf("after a write: %d kept, sweep armed %v; want 1 and armed", n, armed)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, armed := state(); n != 0 || armed; n, armed = state() {
		if time.Now().After(deadline) {
			t.Fatalf("after the TTL: %d kept, sweep armed %v; want none and no sweep", n, armed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
