package importer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestCARotationCostsNoFullReconcileAndNoElasticsearchCall: with many links applied, CAs the
// peer renews in quick succession (one shared bundle for all the links) reach the CA ConfigMap
// through the CA path alone. No full reconcile runs, neither for the answers nor for the echoes
// of the CA path's own ConfigMap writes (a write's watch event can arrive before its response,
// and the next write can land before the previous write's event), and Elasticsearch gets no
// request: a full reconcile here would cost Elasticsearch calls and status writes for every
// update of a rotation.
func TestCARotationCostsNoFullReconcileAndNoElasticsearchCall(t *testing.T) {
	const links, rotations = 20, 4
	var rcs []*v1alpha1.RemoteCluster
	for i := range links {
		rcs = append(rcs, remoteCluster(fmt.Sprintf("l-%02d", i), v1alpha1.SecurityModelAPIKey))
	}
	f := newFixture(t, rcs...)
	realisticWrites(f.kc)
	// Nothing periodic in the way: what runs below is what the CA updates queue.
	f.im.cfg.Resync, f.im.cfg.Pending, f.im.cfg.SigningTick = time.Hour, time.Hour, time.Hour
	f.im.cfg.Recorder = kube.NewRecorderFor(record.NewFakeRecorder(1000))
	ref := link.ExportCAID("data", "logs")
	if err := f.im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: newTestCA(t, "ca-0")}); err != nil {
		t.Fatal(err)
	}
	for i, rc := range rcs {
		id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: rc.Spec.Alias}
		keyID := fmt.Sprintf("key-%d", i)
		c := &peerv1.Credentials{Link: id.Proto(), Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: keyID,
			ApiKeyEncoded: base64.StdEncoding.EncodeToString([]byte(keyID + ":secret")), CaRef: ref, ProxyAddress: "logs.west.example:9443"}
		if err := f.im.OnCredentials(fxPeer, 1, c); err != nil {
			t.Fatalf("credentials of %s: %v", id, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.im.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	cm := wiring.CAConfigMapName(fxES)
	waitCache(t, func() bool {
		c, ok := f.im.cfg.Cache.OwnConfigMap(fxNS, cm)
		return ok && len(wiring.AliasCABundles(c.Data, c.Annotations)) == links
	})
	f.waitQuiet(t)
	if len(f.node.RemoteClusters()) != links {
		t.Fatalf("%d remote clusters configured before the rotation, want %d", len(f.node.RemoteClusters()), links)
	}
	passes, calls := f.im.trig.passes.Load(), f.esCalls.Load()

	var last []byte
	for i := 1; i <= rotations; i++ {
		last = newTestCA(t, fmt.Sprintf("ca-%d", i))
		if err := f.im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: last}); err != nil {
			t.Fatal(err)
		}
		if f.im.queue.Len() != 0 {
			t.Fatalf("rotation %d queued a full reconcile", i)
		}
	}
	want, err := pemutil.ParseCertificates(last, pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		c, err := f.kc.CoreV1().ConfigMaps(fxNS).Get(t.Context(), cm, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, rc := range rcs {
			got, err := pemutil.ParseCertificates([]byte(wiring.AliasCABundles(c.Data, c.Annotations)[rc.Spec.Alias]), pemutil.Limits{})
			if err != nil || len(got) == 0 || pemutil.Fingerprint(got[0]) != pemutil.Fingerprint(want[0]) {
				return false
			}
		}
		return true
	})
	f.waitQuiet(t) // the echoes of the CA path's writes have come back
	if n := f.im.trig.passes.Load() - passes; n != 0 {
		t.Errorf("%d full reconciles ran during %d CA updates of %d links, want none (their triggers are logged at debug level)", n, rotations, links)
	}
	if n := f.esCalls.Load() - calls; n != 0 {
		t.Errorf("%d Elasticsearch requests during %d CA updates of %d links, want none", n, rotations, links)
	}
}

// waitQuiet waits until the importer's queues are empty and no full reconcile ran for a while.
func (f *fixture) waitQuiet(t *testing.T) {
	t.Helper()
	const quiet = time.Second // longer than a pass's first retry
	deadline := time.Now().Add(60 * time.Second)
	last, since := f.im.trig.passes.Load(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := f.im.trig.passes.Load()
		busy := f.im.queue.Len() > 0 || f.im.ca.queue.Len() > 0 || f.im.trig.running.Load() > 0
		if n != last || busy {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
	t.Fatal("the importer did not settle within 60s")
}

// realisticWrites makes the fake API server's ConfigMap and Secret writes behave as a real
// one's where the echo detection depends on it: each write gets a new resourceVersion (the fake
// leaves it empty, so that every event would match every write), and its response comes after
// its watch event went out (as it can under load).
func realisticWrites(kc *fake.Clientset) {
	var rv atomic.Int64
	rv.Store(1000)
	for _, res := range []string{"configmaps", "secrets"} {
		for _, verb := range []string{"create", "update"} {
			kc.PrependReactor(verb, res, func(a k8stesting.Action) (bool, runtime.Object, error) {
				obj := a.(interface{ GetObject() runtime.Object }).GetObject().DeepCopyObject()
				m, ok := obj.(metav1.Object)
				if !ok {
					return false, nil, nil
				}
				gvr := a.GetResource()
				if verb == "update" {
					cur, err := kc.Tracker().Get(gvr, m.GetNamespace(), m.GetName())
					if err != nil {
						return true, nil, err
					}
					if c := cur.(metav1.Object).GetResourceVersion(); c != "" && m.GetResourceVersion() != c {
						return true, nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(), errors.New("the object has been modified"))
					}
				}
				m.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
				var err error
				if verb == "create" {
					err = kc.Tracker().Create(gvr, obj, m.GetNamespace())
				} else {
					err = kc.Tracker().Update(gvr, obj, m.GetNamespace())
				}
				time.Sleep(20 * time.Millisecond) // the watch event goes out first
				return true, obj, err
			})
		}
	}
}
