package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/harness"
)

// The peers phase: west's real agent serves many peers at once. Each fake peer runs in the bench
// process with an agent CA of its own, is paired with west by a Peer object as agentctl pair
// creates it (west accepts, the fake dials), holds one Sync stream on west's peer port over mTLS
// and imports linksPerFakePeer links of a ClusterExport that grants it: west creates an API key
// per link in its Elasticsearch and streams the credentials, and the fake answers as a consumer
// agent would (it acknowledges every update and reports each key applied and connected), so
// that nothing churns. Then west idles with all of them.

const (
	linksPerFakePeer = 10
	// peersPerExport keeps each fleet export within limits.linksPerExport (1000 by default).
	peersPerExport = 100
	maxPeers       = 500
	// peerHeartbeat is what the fakes announce and send: the bench's agents' interval (setUp).
	peerHeartbeat = 5 * time.Second
	// fakeVersion is the Elasticsearch version the fakes' consumers claim.
	fakeVersion = "9.3.2"
)

func fakeEnv(i int) string     { return fmt.Sprintf("fake-%03d", i) }
func fleetExport(i int) string { return fmt.Sprintf("fleet-%d", i/peersPerExport) }
func fakeLink(j int) link.ID {
	return link.ID{Namespace: "fleet", Elasticsearch: "ccs", Alias: fmt.Sprintf("fleet-%02d", j)}
}
func kib(bytes float64) float64 { return bytes / 1024 }

// agentCost is an agent's RSS at the end of an idle window and its CPU over it.
type agentCost struct{ rss, cpu float64 }

// peersResult is what N fake peers with linksPerFakePeer links each cost west's agent.
type peersResult struct {
	peers, links int
	// connect and credentials run from the creation of the first Peer object until every
	// stream opened and until every link's credentials arrived.
	connect, credentials time.Duration
	before, after        agentCost // west idle without the fakes, then with them
	window               time.Duration
	traffic              harness.StreamStats // every fake's stream over the idle window
}

func (r peersResult) perSecond(v int64) float64 { return float64(v) / r.window.Seconds() }

func (r peersResult) print() {
	fmt.Printf("bench: peers@%dx%d: connect %s, credentials %s, idle RSS %.0f MiB (%.0f before), CPU %.2f%% (%.2f%% before), heartbeats %.0f/%s in %.0f/%s out, %.1f KiB/s in %.1f KiB/s out, updates during idle %d\n",
		r.peers, r.links/max(r.peers, 1), r.connect.Round(time.Second), r.credentials.Round(time.Second), r.after.rss, r.before.rss, r.after.cpu, r.before.cpu,
		r.perSecond(r.traffic.HeartbeatsIn)*peerHeartbeat.Seconds(), peerHeartbeat, r.perSecond(r.traffic.HeartbeatsOut)*peerHeartbeat.Seconds(), peerHeartbeat,
		kib(r.perSecond(r.traffic.BytesIn)), kib(r.perSecond(r.traffic.BytesOut)), r.traffic.UpdatesIn)
	fmt.Printf("bench: peers=%d links=%d connect_s=%.1f credentials_s=%.1f rss_mib=%.1f rss_before_mib=%.1f cpu_percent=%.2f cpu_before_percent=%.2f heartbeats_in_per_s=%.1f bytes_in_per_s=%.0f bytes_out_per_s=%.0f idle_updates=%d\n",
		r.peers, r.links, r.connect.Seconds(), r.credentials.Seconds(), r.after.rss, r.before.rss, r.after.cpu, r.before.cpu,
		r.perSecond(r.traffic.HeartbeatsIn), r.perSecond(r.traffic.BytesIn), r.perSecond(r.traffic.BytesOut), r.traffic.UpdatesIn)
}

// peersCost measures west's agent idle, then with n fake peers of linksPerFakePeer links each.
func (b *bed) peersCost(ctx context.Context, n int, window time.Duration) (peersResult, error) {
	west := b.w.Clusters["west"]
	res := peersResult{peers: n, links: n * linksPerFakePeer, window: window}
	var err error
	if res.before, _, err = measureIdle(ctx, west.Agent.Pid, window, nil, nil); err != nil {
		return res, err
	}
	fmt.Printf("bench: agent west idle before the peers: rss_mib=%.1f cpu_percent=%.2f\n", res.before.rss, res.before.cpu)
	fakes, err := b.fleet(ctx, n)
	if err != nil {
		return res, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for _, f := range fakes {
		if err := f.fp.PairWith(ctx, west); err != nil {
			return res, err
		}
	}
	errs := make(chan error, len(fakes))
	for _, f := range fakes {
		go func() { errs <- f.run(cctx, west) }()
	}
	defer func() {
		cancel()
		var wg sync.WaitGroup
		for _, f := range fakes {
			wg.Go(f.close)
		}
		wg.Wait()
	}()
	if res.connect, res.credentials, err = waitFleet(ctx, fakes, errs, start); err != nil {
		return res, err
	}
	fmt.Printf("bench: %d fake peers connected in %s, all %d credentials received in %s\n", n, res.connect.Round(time.Second), res.links, res.credentials.Round(time.Second))
	traffic := func() harness.StreamStats {
		var t harness.StreamStats
		for _, f := range fakes {
			t = t.Add(f.stream().Stats())
		}
		return t
	}
	var profiled chan struct{}
	started := func() {
		if b.profile {
			profiled = b.cpuProfiles(ctx, fmt.Sprintf("cpu-idle-peers-%d", n), window)
		}
	}
	res.after, res.traffic, err = measureIdle(ctx, west.Agent.Pid, window, traffic, started)
	if profiled != nil {
		<-profiled
	}
	if err != nil {
		return res, err
	}
	for _, f := range fakes {
		if err := f.stream().Err(); err != nil {
			return res, fmt.Errorf("the stream of %s ended during the idle window: %w", f.fp.Env, err)
		}
	}
	select {
	case err := <-errs: // a fake that stopped answering (a refusal, a Nack) makes the figures wrong
		return res, err
	default:
	}
	return res, nil
}

// fleet creates the fakes' identities and the exports that grant them (peersPerExport each).
func (b *bed) fleet(ctx context.Context, n int) ([]*fakeConsumer, error) {
	west := b.w.Clusters["west"]
	remote := west.Pod(ns, "logs")
	fakes := make([]*fakeConsumer, n)
	for first := 0; first < n; first += peersPerExport {
		var envs []string
		for i := first; i < min(n, first+peersPerExport); i++ {
			envs = append(envs, fakeEnv(i))
		}
		if _, err := west.Export(ctx, ns, fleetExport(first), "logs", remote.RemoteClusterAddress(), envs, nil); err != nil {
			return nil, err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fp, err := harness.NewFakePeer(ctx, fakeEnv(i))
			fakes[i], errs[i] = &fakeConsumer{fp: fp, export: fleetExport(i), creds: map[link.ID]time.Time{},
				keys: map[link.ID]applied{}, reported: map[link.ID]applied{}, seq: map[link.ID]uint64{}, cas: map[string][]string{}}, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("failed to create a fake peer identity: %w", err)
		}
	}
	return fakes, nil
}

// waitFleet waits until every fake connected and received all its credentials, or one failed.
func waitFleet(ctx context.Context, fakes []*fakeConsumer, errs <-chan error, start time.Time) (connect, creds time.Duration, err error) {
	deadline := time.After(10 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var connected, received, want int
		var lastConn, lastCred time.Time
		for _, f := range fakes {
			c, r, lc, lr := f.progress()
			connected += c
			received += r
			want += linksPerFakePeer
			lastConn, lastCred = later(lastConn, lc), later(lastCred, lr)
		}
		if connected == len(fakes) && received == want {
			return lastConn.Sub(start), lastCred.Sub(start), nil
		}
		select {
		case err := <-errs:
			return 0, 0, err
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-deadline:
			return 0, 0, fmt.Errorf("after 10m only %d of %d fake peers connected and %d of %d credentials received", connected, len(fakes), received, want)
		case <-tick.C:
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// measureIdle lets the agent settle, then measures its CPU over window and its RSS at the end,
// and what traffic (if any) counted over the same window; started (if not nil) is called as the
// window starts.
func measureIdle(ctx context.Context, pid func() int, window time.Duration, traffic func() harness.StreamStats, started func()) (agentCost, harness.StreamStats, error) {
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if traffic == nil {
		traffic = func() harness.StreamStats { return harness.StreamStats{} }
	}
	if err := sleep(idleSettle); err != nil { // past the resync after the last change (scale.go)
		return agentCost{}, harness.StreamStats{}, err
	}
	if started != nil {
		started()
	}
	cpu0, t0 := cpuSeconds(pid()), traffic()
	if err := sleep(window); err != nil {
		return agentCost{}, harness.StreamStats{}, err
	}
	return agentCost{rss: rssMiB(pid()), cpu: (cpuSeconds(pid()) - cpu0) / window.Seconds() * 100}, traffic().Sub(t0), nil
}

// fakeConsumer is one fake peer acting as a consumer agent: it imports linksPerFakePeer links
// of its export and reports each key it receives as applied and connected.
type fakeConsumer struct {
	fp     *harness.FakePeer
	export string

	mu        sync.Mutex
	s         *harness.FakeStream
	connected time.Time
	creds     map[link.ID]time.Time // first credentials of each link
	keys      map[link.ID]applied   // what the last credentials of each link carried
	reported  map[link.ID]applied   // what the last status of each link reported
	seq       map[link.ID]uint64    // the link status resource's last sequence
	cas       map[string][]string   // ExportCA id -> fingerprints
}

// applied is what a consumer applied of a link's credentials.
type applied struct {
	keyID, caRef string
	fps          string // comma-separated CA fingerprints (comparable)
}

func (f *fakeConsumer) stream() *harness.FakeStream {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeConsumer) close() {
	if s := f.stream(); s != nil {
		s.Close()
	}
}

// progress is whether the fake is connected, how many links have credentials, when it
// connected and when the last link's first credentials arrived.
func (f *fakeConsumer) progress() (connected, received int, at, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s != nil {
		connected = 1
	}
	for _, t := range f.creds {
		last = later(last, t)
	}
	return connected, len(f.creds), f.connected, last
}

// run connects (retrying while west has not yet learnt the Peer), imports the links and then
// answers what west sends until ctx ends.
func (f *fakeConsumer) run(ctx context.Context, west *harness.Cluster) error {
	var s *harness.FakeStream
	var err error
	deadline := time.Now().Add(2 * time.Minute)
	for {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err = f.fp.ConnectWith(actx, west, harness.ConnectOptions{HeartbeatInterval: peerHeartbeat, Capabilities: []string{peering.CapabilityExportCA}})
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("fake peer %s failed to connect to west: %w", f.fp.Env, err)
		}
		time.Sleep(time.Second)
	}
	f.mu.Lock()
	f.s, f.connected = s, time.Now()
	f.mu.Unlock()
	for j := range linksPerFakePeer {
		id := fakeLink(j)
		req := &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: ns, ExportName: f.export, ElasticsearchVersion: fakeVersion,
			Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY}
		if err := f.update(ctx, &peerv1.Update{Resource: link.Resource(link.KindImport, id), Sequence: 1,
			Payload: &peerv1.Update_ImportRequest{ImportRequest: req}}); err != nil {
			return err
		}
	}
	return f.consume(ctx)
}

// update sends u and waits for its Ack, resending it (with a fresh nonce) after a RateLimited
// Nack as the agents do.
func (f *fakeConsumer) update(ctx context.Context, u *peerv1.Update) error {
	for {
		u.Nonce = ""
		a, err := f.s.Update(ctx, u)
		switch {
		case err != nil:
			return fmt.Errorf("fake peer %s: %s not answered: %w", f.fp.Env, u.GetResource(), err)
		case a.Acked:
			return nil
		case a.Reason != peering.ReasonRateLimited:
			return fmt.Errorf("fake peer %s: west refused %s: %s: %s", f.fp.Env, u.GetResource(), a.Reason, a.Message)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(peering.DefaultRateLimitedRetry):
		}
	}
}

// consume handles what west sends: ExportCA bundles are remembered, credentials are reported
// applied and connected (a new status only when the key changes, as the importer does), and a
// refusal fails the bench.
func (f *fakeConsumer) consume(ctx context.Context) error {
	seen := 0
	for ctx.Err() == nil {
		updates, err := f.s.WaitReceived(ctx, time.Minute, seen)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if f.s.Err() != nil {
				return fmt.Errorf("fake peer %s: %w", f.fp.Env, err)
			}
			continue // nothing within a minute: idle
		}
		seen += len(updates)
		for _, u := range updates {
			if err := f.handle(ctx, u); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeConsumer) handle(ctx context.Context, u *peerv1.Update) error {
	switch p := u.GetPayload().(type) {
	case *peerv1.Update_ExportCa:
		ref, _ := link.ParseExportCAResource(u.GetResource())
		f.mu.Lock()
		f.cas[ref] = fingerprints(p.ExportCa.GetCaBundle())
		var using []link.ID
		for id, k := range f.keys {
			if k.caRef == ref {
				using = append(using, id)
			}
		}
		f.mu.Unlock()
		for _, id := range using {
			if err := f.report(ctx, id); err != nil {
				return err
			}
		}
	case *peerv1.Update_Refusal:
		return fmt.Errorf("fake peer %s: west refused %s: %s: %s", f.fp.Env, u.GetResource(), p.Refusal.GetReason(), p.Refusal.GetMessage())
	case *peerv1.Update_Credentials:
		c := p.Credentials
		id, err := link.FromProto(c.GetLink())
		if err != nil {
			return fmt.Errorf("fake peer %s: credentials for an invalid link: %w", f.fp.Env, err)
		}
		f.mu.Lock()
		if _, ok := f.creds[id]; !ok {
			f.creds[id] = time.Now()
		}
		k := applied{keyID: c.GetApiKeyId(), caRef: c.GetCaRef()}
		if len(c.GetCaBundle()) > 0 {
			k.caRef, k.fps = "", strings.Join(fingerprints(c.GetCaBundle()), ",")
		}
		f.keys[id] = k
		f.mu.Unlock()
		return f.report(ctx, id)
	}
	return nil
}

// report sends the link's status when what it applied changed since the last report, as the
// importer does: the key in effect and the CA fingerprints, connected at once (no
// Elasticsearch stands behind a fake).
func (f *fakeConsumer) report(ctx context.Context, id link.ID) error {
	f.mu.Lock()
	k := f.keys[id]
	if k.caRef != "" {
		k.fps = strings.Join(f.cas[k.caRef], ",")
	}
	if f.reported[id] == k {
		f.mu.Unlock()
		return nil
	}
	f.seq[id]++
	seq := f.seq[id]
	f.mu.Unlock()
	var fps []string
	if k.fps != "" {
		fps = strings.Split(k.fps, ",")
	}
	status := &peerv1.LinkStatus{Link: id.Proto(), AppliedApiKeyId: k.keyID, WrittenApiKeyId: k.keyID, AppliedCaFingerprints: fps, Connected: true}
	if err := f.update(ctx, &peerv1.Update{Resource: link.Resource(link.KindStatus, id), Sequence: seq,
		Payload: &peerv1.Update_LinkStatus{LinkStatus: status}}); err != nil {
		return err
	}
	f.mu.Lock()
	f.reported[id] = k
	f.mu.Unlock()
	return nil
}

func fingerprints(bundle []byte) []string {
	certs, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range certs {
		out = append(out, pemutil.Fingerprint(c))
	}
	return out
}
