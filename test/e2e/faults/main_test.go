// Package faults shows that ecklink survives what real networks and clusters do, and what a
// misbehaving peer does: crashes at every step of applying a link (failpoints), a partition of the
// agent-to-agent connection during a CA rotation, a Kubernetes API outage, Elasticsearch errors
// and outages, a hostile peer, and 200 links at once; and that no secret reaches a log, an Event,
// a status or agentctl's output. Each test asserts the end state.
//
// Two environments, west (exports) and east (imports), with their agents as processes; east dials
// west through a TCP proxy of the test's own. Scenarios run one after the other: several kill
// agents or stop an apiserver. Run with the test-bed lock:
//
//	flock /tmp/ecklink-testbed.lock go test ./test/e2e/faults -v -timeout 60m
package faults

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// Test-bed timings: the agents' heartbeat interval (a stream is dropped after 3 missed) and the
// importer's/exporter's resync period.
const (
	heartbeat     = time.Second
	resync        = 5 * time.Second
	probeInterval = 2 * time.Second
)

var (
	world *harness.World
	// proxy carries east's stream to west; the partition test cuts it. It stands for west's load
	// balancer: west advertises its address (proxyAddr), so east dials it whether it reads its
	// Peer's spec or what west announces.
	proxy     *harness.Proxy
	proxyAddr = testbed.LoopbackIP() + ":9400"
	// agentBin is the agent binary the world runs (agentctl is built next to it when present).
	agentBin string
)

func TestMain(m *testing.M) {
	os.Exit(harness.Suite{
		Name: "faults",
		Options: harness.Options{
			Names:             []string{"west", "east"},
			HeartbeatInterval: heartbeat,
			ResyncInterval:    resync,
			LogLevel:          "debug",
			// The agents run with exactly what the Helm chart grants its ServiceAccount.
			AgentKubeconfig: harness.ChartServiceAccount(),
			NoAdvertise:     map[string]bool{"west": true},
			AgentArgs:       map[string][]string{"west": {"--advertise-endpoint", proxyAddr}},
			// The agents' own link probes run often enough for a test to see them.
			ExtraAgentArgs: []string{"--probe-interval", probeInterval.String()},
		},
		Setup: func(ctx context.Context, w *harness.World) error {
			agentBin = w.AgentBinary()
			return pairThroughProxy(ctx)
		},
		Teardown: func() {
			if proxy != nil {
				proxy.Close()
			}
		},
		// Once more, after every scenario that ran: no secret in any log, Event or status.
		Passed: harness.SecretScan("faults"),
	}.Main(m, &world))
}

// pairThroughProxy pairs east (dialing) with west and points east's Peer west at the proxy.
func pairThroughProxy(ctx context.Context) error {
	west := world.Clusters["west"]
	var err error
	if proxy, err = harness.StartProxy(proxyAddr, west.Endpoint); err != nil {
		return err
	}
	if err := world.Pair(ctx, "east", "west"); err != nil {
		return err
	}
	return setPeerEndpoints(ctx, world.Clusters["east"], "west", []string{proxy.Addr()})
}

func requireWorld(t *testing.T) { harness.RequireWorld(t, world) }
