// Package halves holds what both halves of the agent (the exporter, the remote side, and the
// importer, the local side) are built from: this agent's environment, the informer cache, the
// Kubernetes and Elasticsearch clients, the Event recorder, metrics, logger, clock and resync
// period. app fills one Deps in and hands it to both; each half's Config adds its own settings.
package halves

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
)

// Clients gives an Elasticsearch client for a resource.
type Clients interface {
	Client(ctx context.Context, t elastic.Target) (*elastic.Client, error)
}

// Outbox sends resources to peers; the peering layer numbers, delivers and resends them.
type Outbox interface {
	Publish(peer, resource string, payload proto.Message) error
	Remove(peer, resource string) error
}

// DefaultResync is how often a half re-checks everything it holds when Deps.Resync is 0.
const DefaultResync = 30 * time.Second

// Deps is what both halves are built from.
type Deps struct {
	// Environment is this agent's environment name (recorded in key metadata, sent to peers).
	Environment string
	Cache       *cache.Cache
	Kube        kubernetes.Interface
	Dynamic     dynamic.Interface
	CRDs        *kube.Client
	Elastic     Clients
	// Recorder records Events of condition transitions; none if nil.
	Recorder *kube.Recorder
	Metrics  *metrics.Metrics
	// Logger is the root logger; a null logger if nil.
	Logger hclog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Resync re-checks everything a half holds this often; DefaultResync if 0.
	Resync time.Duration
}

// Check returns d with its defaults filled in, or an error naming the required fields half
// (the half's name in the error) finds missing: Environment, Cache, Kube, Dynamic, CRDs and
// Elastic, then the half's own (extra: name -> missing).
func (d Deps) Check(half string, extra ...Required) (Deps, error) {
	var missing []string
	for _, f := range append([]Required{
		{"Environment", d.Environment == ""}, {"Cache", d.Cache == nil}, {"Kube", d.Kube == nil},
		{"Dynamic", d.Dynamic == nil}, {"CRDs", d.CRDs == nil}, {"Elastic", d.Elastic == nil},
	}, extra...) {
		if f.Missing {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return d, fmt.Errorf("failed to create %s: missing %v", half, missing)
	}
	if d.Logger == nil {
		d.Logger = hclog.NewNullLogger()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Resync == 0 {
		d.Resync = DefaultResync
	}
	return d, nil
}

// Required is a field a half needs and whether it is missing.
type Required struct {
	Name    string
	Missing bool
}
