package ctl

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/internal/pemutil"
)

func newStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status --context A",
		Short: "Show the agent, its peers, its links and its exports",
		Long: `Shows, for the environment of --context: the agent's own CA (fingerprints, expiry
countdowns) and endpoints; each Peer (state, connected, last heartbeat, version, trusted agent
CA fingerprints and expiry; the endpoints it announced and those of its spec; the stream's
endpoint, last connect and disconnect, last error, last refusal each way and last update each
side applied); each RemoteCluster (alias, state, peer stream, the agent's probe, remote CA
fingerprint and expiry, API key id, age and expiry, last sync); each ClusterExport with the
links that consume it.
Nothing secret is shown: keys by id only.

With --wait, waits until every Peer is connected and every RemoteCluster is Ready.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := g.local()
			if err != nil {
				return err
			}
			var r *statusReport
			gather := func(ctx context.Context) (bool, string, error) {
				if r, err = g.gatherStatus(ctx, e); err != nil {
					return false, "", err
				}
				pending := r.pending()
				return len(pending) == 0, strings.Join(pending, "; "), nil
			}
			if g.wait {
				err = g.poll(cmd.Context(), "peers and links to be ready", gather)
			} else {
				_, _, err = gather(cmd.Context())
			}
			if err != nil && r == nil {
				return err
			}
			r.wide = g.wide()
			if perr := g.print(r, r.table); perr != nil {
				return perr
			}
			return err
		},
	}
}

// statusReport is the output of status.
type statusReport struct {
	Environment string         `json:"environment"`
	Namespace   string         `json:"namespace"`
	Agent       agentStatus    `json:"agent"`
	Peers       []peerStatus   `json:"peers"`
	Links       []linkStatus   `json:"links"`
	Exports     []exportStatus `json:"exports"`
	// Warnings name what could not be read (e.g. RBAC forbids listing a kind).
	Warnings []string `json:"warnings,omitempty"`

	now  time.Time // the clock of the countdowns in the table
	wide bool      // -o wide: more columns
}

// names lists the objects of the report for -o name: Peers, RemoteClusters, ClusterExports.
func (r *statusReport) names() []string {
	var out []string
	for _, p := range r.Peers {
		out = append(out, "peer.ecklink.io/"+p.Name)
	}
	for _, l := range r.Links {
		out = append(out, "remotecluster.ecklink.io/"+l.Name)
	}
	for _, x := range r.Exports {
		out = append(out, "clusterexport.ecklink.io/"+x.Name)
	}
	return out
}

// cells appends the wide columns when the report is wide.
func (r *statusReport) cells(base []string, wide ...string) []string {
	if r.wide {
		return append(base, wide...)
	}
	return base
}

// caStatus describes one CA certificate; never key material.
type caStatus struct {
	Role             string    `json:"role,omitempty"`
	Fingerprint      string    `json:"fingerprint"`
	Subject          string    `json:"subject"`
	NotAfter         time.Time `json:"notAfter"`
	ExpiresInSeconds int64     `json:"expiresInSeconds"`
}

type agentStatus struct {
	Endpoints []string   `json:"endpoints"`
	Pin       string     `json:"pin"`
	CAs       []caStatus `json:"cas"`
}

type peerStatus struct {
	Name string `json:"name"`
	Dial bool   `json:"dial"`
	// Endpoints are spec.endpoints; LearnedEndpoints what the peer announced (dialed first).
	Endpoints        []string `json:"endpoints,omitempty"`
	LearnedEndpoints []string `json:"learnedEndpoints,omitempty"`
	// State is Pending, Establishing, Active, Failing or Terminated.
	State         string     `json:"state,omitempty"`
	Connected     bool       `json:"connected"`
	Reason        string     `json:"reason,omitempty"`
	Message       string     `json:"message,omitempty"`
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
	PeerVersion   string     `json:"peerVersion,omitempty"`
	TrustCurrent  bool       `json:"trustCurrent"`
	CAs           []caStatus `json:"cas"`
	Deleting      bool       `json:"deleting,omitempty"`
	// Stream is the Peer's status.stream: endpoint, times, last error, refusals, applied updates.
	Stream *v1alpha1.PeerStream `json:"stream,omitempty"`
}

type linkStatus struct {
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	Elasticsearch string `json:"elasticsearch"`
	Alias         string `json:"alias"`
	Peer          string `json:"peer"`
	Export        string `json:"export"`
	Ready         bool   `json:"ready"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
	ProxyAddress  string `json:"proxyAddress,omitempty"`
	ServerName    string `json:"serverName,omitempty"`
	// PeerConnected and Probe are the PeerConnected and ProbeSucceeded conditions.
	PeerConnected *conditionStatus `json:"peerConnected,omitempty"`
	Probe         *conditionStatus `json:"probe,omitempty"`
	RemoteCAs     []caStatus       `json:"remoteCAs"`
	APIKey        *apiKeyStatus    `json:"apiKey,omitempty"`
	LastSync      *time.Time       `json:"lastSync,omitempty"`
}

// conditionStatus is a condition as status shows it.
type conditionStatus struct {
	OK      bool      `json:"ok"`
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
}

func conditionOf(conds []metav1.Condition, t string) *conditionStatus {
	c := condition(conds, t)
	if c == nil {
		return nil
	}
	return &conditionStatus{OK: c.Status == metav1.ConditionTrue, Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.UTC()}
}

type apiKeyStatus struct {
	ID               string     `json:"id"`
	AppliedAt        *time.Time `json:"appliedAt,omitempty"`
	Expiration       *time.Time `json:"expiration,omitempty"`
	ExpiresInSeconds int64      `json:"expiresInSeconds,omitempty"`
}

type exportStatus struct {
	Namespace     string             `json:"namespace"`
	Name          string             `json:"name"`
	Elasticsearch string             `json:"elasticsearch"`
	Peers         []string           `json:"peers"`
	Ready         bool               `json:"ready"`
	Reason        string             `json:"reason,omitempty"`
	ProxyAddress  string             `json:"proxyAddress,omitempty"`
	Links         []exportLinkStatus `json:"links"`
}

type exportLinkStatus struct {
	Peer             string     `json:"peer"`
	Link             string     `json:"link"`
	APIKeyID         string     `json:"apiKeyId,omitempty"`
	Created          *time.Time `json:"created,omitempty"`
	Expires          *time.Time `json:"expires,omitempty"`
	LastAcknowledged *time.Time `json:"lastAcknowledged,omitempty"`
	Connected        bool       `json:"connected"`
	Message          string     `json:"message,omitempty"`
}

func (g *globals) gatherStatus(ctx context.Context, e *env) (*statusReport, error) {
	now := g.opts.Now()
	id, err := pairing.ReadIdentity(ctx, e.kube, e.namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.label(), err)
	}
	r := &statusReport{Environment: id.Environment, Namespace: e.namespace, Agent: agentStatus{Endpoints: id.Endpoints, Pin: id.Pin}, now: now}
	r.Agent.CAs = ownCAs(id, now)
	peers, err := e.crds.Peers().List(ctx, e.namespace, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		r.Peers = append(r.Peers, peerStatusOf(p, now))
	}
	if rcs, err := e.crds.RemoteClusters().List(ctx, "", metav1.ListOptions{}); err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	} else {
		for _, rc := range rcs {
			r.Links = append(r.Links, linkStatusOf(rc, now))
		}
	}
	if exps, err := e.crds.ClusterExports().List(ctx, "", metav1.ListOptions{}); err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	} else {
		for _, x := range exps {
			r.Exports = append(r.Exports, exportStatusOf(x))
		}
	}
	slices.SortFunc(r.Peers, func(a, b peerStatus) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(r.Links, func(a, b linkStatus) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	slices.SortFunc(r.Exports, func(a, b exportStatus) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return r, nil
}

// pending lists what is not ready yet, for --wait.
func (r *statusReport) pending() []string {
	var out []string
	for _, p := range r.Peers {
		if !p.Connected {
			out = append(out, fmt.Sprintf("peer %s not connected (%s)", p.Name, dash(p.Reason)))
		}
	}
	for _, l := range r.Links {
		if !l.Ready {
			out = append(out, fmt.Sprintf("link %s/%s not ready (%s)", l.Namespace, l.Name, dash(l.Reason)))
		}
	}
	return out
}

func caStatusOf(c *x509.Certificate, role string, now time.Time) caStatus {
	return caStatus{Role: role, Fingerprint: pemutil.Fingerprint(c), Subject: c.Subject.String(), NotAfter: c.NotAfter.UTC(), ExpiresInSeconds: seconds(now, c.NotAfter)}
}

// ownCAs labels the agent's CAs: the pinned one is active, a newer one is the staged next, an
// older one the retiring previous.
func ownCAs(id pairing.AgentIdentity, now time.Time) []caStatus {
	var active *x509.Certificate
	for _, c := range id.CAs {
		if pemutil.SPKIPin(c) == id.Pin {
			active = c
		}
	}
	var out []caStatus
	for _, c := range id.CAs {
		role := "active"
		switch {
		case active == nil:
			role = ""
		case c != active && c.NotBefore.After(active.NotBefore):
			role = "next"
		case c != active:
			role = "previous"
		}
		out = append(out, caStatusOf(c, role, now))
	}
	return out
}

func condition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func peerStatusOf(p *v1alpha1.Peer, now time.Time) peerStatus {
	s := peerStatus{Name: p.Name, Dial: p.Spec.Dial, Endpoints: p.Spec.Endpoints, LearnedEndpoints: p.Status.Endpoints, State: string(p.Status.State),
		PeerVersion: p.Status.PeerVersion, LastHeartbeat: timePtr(p.Status.LastHeartbeat), Deleting: p.DeletionTimestamp != nil, Stream: p.Status.Stream}
	if c := condition(p.Status.Conditions, v1alpha1.ConditionConnected); c != nil {
		s.Connected, s.Reason, s.Message = c.Status == metav1.ConditionTrue, c.Reason, c.Message
	} else {
		s.Reason, s.Message = "NoStatus", "the agent has not reported on this Peer yet"
	}
	if c := condition(p.Status.Conditions, v1alpha1.ConditionTrustCurrent); c != nil {
		s.TrustCurrent = c.Status == metav1.ConditionTrue
	}
	// What the agent trusts now (learnt over the stream, or spec.caBundle), as it reports it.
	for _, ca := range p.Status.CertificateAuthorities {
		cs := caStatus{Fingerprint: ca.Fingerprint, Subject: ca.Subject}
		if ca.NotAfter != nil {
			cs.NotAfter, cs.ExpiresInSeconds = ca.NotAfter.UTC(), seconds(now, ca.NotAfter.Time)
		}
		s.CAs = append(s.CAs, cs)
	}
	if len(s.CAs) == 0 {
		certs, _ := pemutil.ParseCertificates([]byte(p.Spec.CABundle), pemutil.Limits{})
		for _, c := range certs {
			s.CAs = append(s.CAs, caStatusOf(c, "", now))
		}
	}
	return s
}

func linkStatusOf(rc *v1alpha1.RemoteCluster, now time.Time) linkStatus {
	st := rc.Status
	l := linkStatus{Namespace: rc.Namespace, Name: rc.Name, Elasticsearch: rc.Spec.ElasticsearchRef.Name, Alias: rc.Spec.Alias, Peer: rc.Spec.Peer,
		Export: rc.Spec.Export.Namespace + "/" + rc.Spec.Export.Name, ProxyAddress: st.ProxyAddress, ServerName: st.ServerName, LastSync: timePtr(st.LastSync),
		PeerConnected: conditionOf(st.Conditions, v1alpha1.ConditionPeerConnected), Probe: conditionOf(st.Conditions, v1alpha1.ConditionProbeSucceeded)}
	if c := condition(st.Conditions, v1alpha1.ConditionReady); c != nil {
		l.Ready, l.Reason, l.Message = c.Status == metav1.ConditionTrue, c.Reason, c.Message
	} else {
		l.Reason = "NoStatus"
	}
	for _, ca := range st.RemoteCertificateAuthorities {
		cs := caStatus{Fingerprint: ca.Fingerprint, Subject: ca.Subject}
		if ca.NotAfter != nil {
			cs.NotAfter, cs.ExpiresInSeconds = ca.NotAfter.UTC(), seconds(now, ca.NotAfter.Time)
		}
		l.RemoteCAs = append(l.RemoteCAs, cs)
	}
	if k := st.APIKey; k != nil {
		l.APIKey = &apiKeyStatus{ID: k.ID, AppliedAt: timePtr(k.AppliedAt), Expiration: timePtr(k.Expiration)}
		if k.Expiration != nil {
			l.APIKey.ExpiresInSeconds = seconds(now, k.Expiration.Time)
		}
	}
	return l
}

func exportStatusOf(x *v1alpha1.ClusterExport) exportStatus {
	s := exportStatus{Namespace: x.Namespace, Name: x.Name, Elasticsearch: x.Spec.ElasticsearchRef.Name, Peers: x.Spec.GrantedPeers(), ProxyAddress: x.Status.ProxyAddress}
	if c := condition(x.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		s.Ready, s.Reason = c.Status == metav1.ConditionTrue, c.Reason
	}
	for _, l := range x.Status.Links {
		s.Links = append(s.Links, exportLinkStatus{Peer: l.Peer, Link: l.LocalNamespace + "/" + l.LocalElasticsearch + "/" + l.Alias, APIKeyID: l.APIKeyID,
			Created: timePtr(l.Created), Expires: timePtr(l.Expires), LastAcknowledged: timePtr(l.LastAcknowledged), Connected: l.Connected, Message: l.Message})
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func state(ok bool, okWord, reason string) string {
	if ok {
		return okWord
	}
	return "no: " + dash(reason)
}

func caList(cas []caStatus, now time.Time) string {
	var parts []string
	for _, c := range cas {
		s := short(c.Fingerprint)
		if c.Role != "" {
			s += " " + c.Role
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", s, until(now, c.NotAfter)))
	}
	return dash(strings.Join(parts, ", "))
}

func tptr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func (r *statusReport) table(w io.Writer) error {
	now := r.now
	fmt.Fprintf(w, "Environment %s (agent namespace %s)\n", r.Environment, r.Namespace)
	fmt.Fprintf(w, "Endpoints: %s\n\n", dash(strings.Join(r.Agent.Endpoints, ", ")))
	t := newTable(w)
	row(t, "AGENT CA", "ROLE", "NOT AFTER", "EXPIRES")
	for _, c := range r.Agent.CAs {
		row(t, short(c.Fingerprint), dash(c.Role), c.NotAfter.Format(time.RFC3339), until(now, c.NotAfter))
	}
	t.Flush()
	section(w, "PEERS", len(r.Peers), "none: pair with agentctl pair, or pair token and pair join", r.peerRows)
	for _, p := range r.Peers {
		peerDetail(w, p, now)
	}
	section(w, "LINKS (RemoteClusters)", len(r.Links), "none", r.linkRows)
	section(w, "EXPORTS (ClusterExports)", len(r.Exports), "none", r.exportRows)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "\nwarning: %s\n", warn)
	}
	return nil
}

// section writes a blank line, title and a table of n rows that rows writes, or none when n is 0.
func section(w io.Writer, title string, n int, none string, rows func(t io.Writer)) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, title)
	if n == 0 {
		fmt.Fprintln(w, "  "+none)
		return
	}
	t := newTable(w)
	rows(t)
	t.Flush()
}

// peerRows writes the peers table.
func (r *statusReport) peerRows(t io.Writer) {
	now := r.now
	row(t, r.cells([]string{"NAME", "STATE", "DIALS", "CONNECTED", "LAST HEARTBEAT", "VERSION", "TRUST", "AGENT CAS"}, "ENDPOINTS", "MESSAGE")...)
	for _, p := range r.Peers {
		name := p.Name
		if p.Deleting {
			name += " (unpairing)"
		}
		row(t, r.cells([]string{name, dash(p.State), yesNo(p.Dial), state(p.Connected, "yes", p.Reason), ago(now, tptr(p.LastHeartbeat)), dash(p.PeerVersion),
			state(p.TrustCurrent, "current", "stale"), caList(p.CAs, now)}, dash(strings.Join(p.Endpoints, ",")), dash(p.Message))...)
	}
}

// linkRows writes the links table.
func (r *statusReport) linkRows(t io.Writer) {
	now := r.now
	row(t, r.cells([]string{"REMOTECLUSTER", "ALIAS", "PEER", "EXPORT", "STATE", "PEER STREAM", "PROBE", "REMOTE CA", "API KEY", "KEY AGE", "KEY EXPIRES", "LAST SYNC"},
		"ELASTICSEARCH", "PROXY ADDRESS", "SERVER NAME", "MESSAGE")...)
	for _, l := range r.Links {
		key, age, exp := "-", "-", "-"
		if l.APIKey != nil {
			key, age, exp = l.APIKey.ID, ago(now, tptr(l.APIKey.AppliedAt)), until(now, tptr(l.APIKey.Expiration))
		}
		row(t, r.cells([]string{l.Namespace + "/" + l.Name, l.Alias, l.Peer, l.Export, state(l.Ready, "Ready", l.Reason), condWord(l.PeerConnected, "up"), condWord(l.Probe, "ok"),
			caList(l.RemoteCAs, now), key, age, exp, ago(now, tptr(l.LastSync))},
			l.Elasticsearch, dash(l.ProxyAddress), dash(l.ServerName), dash(l.Message))...)
	}
}

// exportRows writes the exports table: a row per export and link.
func (r *statusReport) exportRows(t io.Writer) {
	now := r.now
	row(t, r.cells([]string{"CLUSTEREXPORT", "ELASTICSEARCH", "READY", "PEER", "LINK", "API KEY", "CREATED", "KEY EXPIRES", "CONNECTED"}, "PROXY ADDRESS", "LAST ACK")...)
	for _, x := range r.Exports {
		name, ready := x.Namespace+"/"+x.Name, state(x.Ready, "yes", x.Reason)
		if len(x.Links) == 0 {
			row(t, r.cells([]string{name, x.Elasticsearch, ready, strings.Join(x.Peers, ","), "-", "-", "-", "-", "-"}, dash(x.ProxyAddress), "-")...)
		}
		for _, l := range x.Links {
			row(t, r.cells([]string{name, x.Elasticsearch, ready, l.Peer, l.Link, dash(l.APIKeyID), ago(now, tptr(l.Created)), until(now, tptr(l.Expires)), yesNo(l.Connected)},
				dash(x.ProxyAddress), ago(now, tptr(l.LastAcknowledged)))...)
		}
	}
}

// condWord renders a condition in a table cell: okWord, "no: <reason>", or "-" when absent.
func condWord(c *conditionStatus, okWord string) string {
	if c == nil {
		return "-"
	}
	return state(c.OK, okWord, c.Reason)
}

// peerDetail prints what a Peer's status says about its stream, under the peers table.
func peerDetail(w io.Writer, p peerStatus, now time.Time) {
	var parts []string
	eps := "endpoints " + dash(strings.Join(p.Endpoints, ", "))
	if len(p.LearnedEndpoints) > 0 {
		eps = "announced " + strings.Join(p.LearnedEndpoints, ", ") + "; spec " + dash(strings.Join(p.Endpoints, ", "))
	}
	parts = append(parts, eps)
	s := p.Stream
	if s == nil {
		fmt.Fprintf(w, "  %s: %s\n", p.Name, strings.Join(parts, "; "))
		return
	}
	if s.Endpoint != "" {
		parts = append(parts, "stream to "+s.Endpoint)
	}
	if s.LastConnectTime != nil {
		parts = append(parts, "connected "+ago(now, s.LastConnectTime.Time))
	}
	if s.LastDisconnectTime != nil {
		parts = append(parts, "disconnected "+ago(now, s.LastDisconnectTime.Time))
	}
	fmt.Fprintf(w, "  %s: %s\n", p.Name, strings.Join(parts, "; "))
	if s.LastError != "" {
		fmt.Fprintf(w, "    last error: %s\n", s.LastError)
	}
	nack := func(what string, n *v1alpha1.NackRecord) {
		if n != nil {
			fmt.Fprintf(w, "    %s: %s@%d %s: %s (%s)\n", what, n.Resource, n.Sequence, n.Reason, n.Message, ago(now, metaTime(n.Time)))
		}
	}
	nack("last refused by this agent", s.LastNackSent)
	nack("last refused by the peer", s.LastNackReceived)
	applied := func(what string, a *v1alpha1.AppliedUpdate) {
		if a != nil {
			fmt.Fprintf(w, "    %s: %s@%d (%s)\n", what, a.Resource, a.Sequence, ago(now, metaTime(a.Time)))
		}
	}
	applied("last applied by this agent", s.LastApplied)
	applied("last applied by the peer", s.PeerLastApplied)
}

func metaTime(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}
