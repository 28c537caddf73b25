package halves

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/fake"
	kfake "k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/kube"
)

func TestCheck(t *testing.T) {
	dyn := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: dyn})
	if err != nil {
		t.Fatal(err)
	}
	complete := Deps{Environment: "east", Cache: &cache.Cache{}, Kube: kfake.NewClientset(), Dynamic: dyn, CRDs: crds, Elastic: noClients{}}
	for _, tc := range []struct {
		name   string
		change func(*Deps)
		extra  []Required
		want   string // in the error; "" for none
	}{
		{"complete", func(*Deps) {}, nil, ""},
		{"no environment", func(d *Deps) { d.Environment = "" }, nil, "failed to create half: missing [Environment]"},
		{"no clients", func(d *Deps) { d.Kube, d.Elastic = nil, nil }, nil, "missing [Kube Elastic]"},
		{"no cache or CRDs", func(d *Deps) { d.Cache, d.CRDs, d.Dynamic = nil, nil, nil }, nil, "missing [Cache Dynamic CRDs]"},
		{"the half's own", func(*Deps) {}, []Required{{"Outbox", true}, {"Other", false}}, "missing [Outbox]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := complete
			tc.change(&d)
			got, err := d.Check("half", tc.extra...)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Check = %v, want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Logger == nil || got.Now == nil || got.Resync != DefaultResync {
				t.Errorf("defaults: logger %v, clock set %v, resync %s; want a logger, a clock and %s", got.Logger, got.Now != nil, got.Resync, DefaultResync)
			}
			d.Resync, d.Now = time.Minute, func() time.Time { return time.Unix(1, 0) }
			if got, _ := d.Check("half"); got.Resync != time.Minute || got.Now() != time.Unix(1, 0) {
				t.Errorf("set values changed: resync %s, now %s", got.Resync, got.Now())
			}
		})
	}
}

type noClients struct{ Clients }
