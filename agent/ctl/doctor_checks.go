package ctl

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/internal/tlsprobe"
)

// Heartbeats older than these make the peer check warn, then fail: the agent writes the Peer
// status every few seconds while it runs.
const (
	heartbeatWarn = 30 * time.Second
	heartbeatFail = 2 * time.Minute
)

// linkRun is the state of one RemoteCluster's diagnosis.
type linkRun struct {
	d   *doctor
	rc  *v1alpha1.RemoteCluster
	now time.Time
	// chain is what the remote cluster server presented, nil when not reached.
	chain  []*x509.Certificate
	checks []check
}

func (l *linkRun) add(c check) { l.checks = append(l.checks, c) }

func (l *linkRun) failed(name string) bool {
	return slices.ContainsFunc(l.checks, func(c check) bool { return c.Name == name && c.Result == resultFail })
}

func (d *doctor) diagnose(ctx context.Context, rc *v1alpha1.RemoteCluster) linkDiagnosis {
	l := &linkRun{d: d, rc: rc, now: d.g.opts.Now()}
	l.peerChecks(ctx)
	l.credentials()
	l.network(ctx)
	l.apiKey(ctx)
	l.remoteInfo(ctx)
	out := linkDiagnosis{RemoteCluster: rc.Namespace + "/" + rc.Name, Alias: rc.Spec.Alias, Elasticsearch: rc.Spec.ElasticsearchRef.Name,
		Peer: rc.Spec.Peer, Export: rc.Spec.Export.Namespace + "/" + rc.Spec.Export.Name, Checks: l.checks}
	for _, c := range l.checks {
		if c.Result == resultFail {
			out.Failing = c.Name
			break
		}
	}
	return out
}

func (l *linkRun) exportRef() string {
	return fmt.Sprintf("ClusterExport %s/%s in environment %s", l.rc.Spec.Export.Namespace, l.rc.Spec.Export.Name, l.rc.Spec.Peer)
}

// peerChecks: the Peer exists, its stream is up with recent heartbeats, its trust is current.
func (l *linkRun) peerChecks(ctx context.Context) {
	d, name := l.d, l.rc.Spec.Peer
	item := fmt.Sprintf("Peer %s/%s", d.local.namespace, name)
	p, err := d.local.crds.Peers().Get(ctx, d.local.namespace, name)
	switch {
	case apierrors.IsNotFound(err):
		l.add(check{Name: checkPeer, Result: resultFail, Item: item, Detail: fmt.Sprintf("environment %s is not paired with %s", d.environment, name),
			Fix: fmt.Sprintf("pair them: agentctl pair --context <%s> --peer-context <%s>, or pair token and pair join", d.environment, name)})
		l.add(check{Name: checkPeerTrust, Result: resultSkip, Item: item, Detail: "no Peer"})
		return
	case err != nil:
		l.add(check{Name: checkPeer, Result: resultFail, Item: item, Detail: err.Error()})
		l.add(check{Name: checkPeerTrust, Result: resultSkip, Item: item, Detail: "Peer not read"})
		return
	}
	l.add(l.peerStream(p, item))
	l.add(l.peerTrust(p, item))
}

func (l *linkRun) peerStream(p *v1alpha1.Peer, item string) check {
	c := check{Name: checkPeer, Item: item}
	if p.DeletionTimestamp != nil {
		c.Result, c.Detail, c.Fix = resultFail, "the Peer is being deleted (unpairing)", "pair again once the unpairing completed"
		return c
	}
	cond := condition(p.Status.Conditions, v1alpha1.ConditionConnected)
	hb := time.Time{}
	if p.Status.LastHeartbeat != nil {
		hb = p.Status.LastHeartbeat.Time
	}
	switch {
	case cond == nil:
		c.Result, c.Detail = resultFail, "the agent has not reported on this Peer"
		c.Fix = "check that the agent of this environment runs: kubectl -n " + l.d.local.namespace + " get pods"
	case cond.Status != metav1.ConditionTrue:
		c.Result, c.Detail = resultFail, fmt.Sprintf("Connected=%s %s: %s", cond.Status, cond.Reason, cond.Message)
		c.Fix = streamFix(p, cond.Reason, l.d.environment)
	case !hb.IsZero() && l.now.Sub(hb) > heartbeatFail:
		c.Result, c.Detail = resultFail, fmt.Sprintf("the last heartbeat is %s old: the stream is down, or the agent of this environment stopped reporting", ago(l.now, hb))
		c.Fix = "check that the agent of this environment runs (kubectl -n " + l.d.local.namespace + " get pods) and its logs"
	case !hb.IsZero() && l.now.Sub(hb) > heartbeatWarn:
		c.Result, c.Detail = resultWarn, fmt.Sprintf("connected, but the last heartbeat is %s old", ago(l.now, hb))
	default:
		c.Result, c.Detail = resultOK, fmt.Sprintf("connected, last heartbeat %s, peer version %s", ago(l.now, hb), dash(p.Status.PeerVersion))
	}
	return c
}

func streamFix(p *v1alpha1.Peer, reason, self string) string {
	switch reason {
	case v1alpha1.ReasonDialFailed:
		return fmt.Sprintf("this agent cannot reach %s: check that the agent of %s runs and that the address is reachable from here", strings.Join(p.Spec.Endpoints, ", "), p.Name)
	case v1alpha1.ReasonWaitingForDial:
		return fmt.Sprintf("the agent of %s dials this one: check that it runs, that it has a Peer %s, and that it reaches this agent's endpoint", p.Name, self)
	case v1alpha1.ReasonHandshakeFailed:
		return "the agents do not trust each other's certificates: pair them again (agentctl unpair, then pair)"
	default:
		return fmt.Sprintf("check both agents: agentctl status on %s and on %s", self, p.Name)
	}
}

func (l *linkRun) peerTrust(p *v1alpha1.Peer, item string) check {
	c := check{Name: checkPeerTrust, Item: item + " status.certificateAuthorities"}
	// What the agent trusts now: learnt over the stream (its Secret), or spec.caBundle; it
	// reports it in status. Agents before 0.2 do not: their spec.caBundle is what they trust.
	var notAfter []time.Time
	for _, ca := range p.Status.CertificateAuthorities {
		if ca.NotAfter != nil {
			notAfter = append(notAfter, ca.NotAfter.Time)
		}
	}
	if len(notAfter) == 0 {
		c.Item = item + " spec.caBundle"
		certs, err := pemutil.ParseCertificates([]byte(p.Spec.CABundle), pemutil.Limits{})
		if err != nil {
			c.Result, c.Detail, c.Fix = resultFail, "the peer's agent CA bundle is unusable: "+err.Error(), "pair again (agentctl unpair, then pair)"
			return c
		}
		for _, ca := range certs {
			notAfter = append(notAfter, ca.NotAfter)
		}
	}
	latest := time.Time{}
	for _, na := range notAfter {
		if na.After(latest) {
			latest = na
		}
	}
	switch {
	case !latest.After(l.now):
		c.Result, c.Detail, c.Fix = resultFail, "every agent CA of the peer expired", "pair again (agentctl unpair, then pair)"
	default:
		c.Result, c.Detail = resultOK, fmt.Sprintf("%d agent CA(s), the latest expires %s", len(notAfter), until(l.now, latest))
		if cond := condition(p.Status.Conditions, v1alpha1.ConditionTrustCurrent); cond != nil && cond.Status != metav1.ConditionTrue {
			c.Result, c.Detail = resultWarn, fmt.Sprintf("TrustCurrent=%s %s: %s", cond.Status, cond.Reason, cond.Message)
		}
	}
	return c
}

// credentials: the peer answered and the agent applied CA, key and settings.
func (l *linkRun) credentials() {
	rc := l.rc
	item := fmt.Sprintf("RemoteCluster %s/%s", rc.Namespace, rc.Name)
	c := check{Name: checkCredentials, Item: item}
	ready := condition(rc.Status.Conditions, v1alpha1.ConditionReady)
	if rc.Status.ProxyAddress == "" {
		c.Result = resultFail
		c.Detail = "the peer has sent no credentials"
		if ready != nil {
			c.Detail = fmt.Sprintf("%s: %s", ready.Reason, ready.Message)
		}
		c.Fix = fmt.Sprintf("check that %s exists and lists %s in spec.peers", l.exportRef(), l.d.environment)
		if ready != nil && ready.Reason == v1alpha1.ReasonPeerNotGranted {
			c.Fix = fmt.Sprintf("ask the owner of %s to add %s to its spec.peers", l.exportRef(), l.d.environment)
		}
		l.add(c)
		return
	}
	for _, t := range []string{v1alpha1.ConditionTrustApplied, v1alpha1.ConditionCredentialsApplied, v1alpha1.ConditionSettingsApplied} {
		if cond := condition(rc.Status.Conditions, t); cond != nil && cond.Status != metav1.ConditionTrue {
			c.Result, c.Detail = resultFail, fmt.Sprintf("%s=%s %s: %s", t, cond.Status, cond.Reason, cond.Message)
			c.Fix = "see the condition; the agent retries by itself"
			l.add(c)
			return
		}
	}
	key := "-"
	if rc.Status.APIKey != nil {
		key = rc.Status.APIKey.ID
	}
	c.Result, c.Detail = resultOK, fmt.Sprintf("proxy address %s, server name %s, API key %s applied", rc.Status.ProxyAddress, rc.Status.ServerName, key)
	l.add(c)
}

// network: the proxy address accepts connections, presents a certificate from a trusted CA,
// with the server name among its SANs.
func (l *linkRun) network(ctx context.Context) {
	rc, addr := l.rc, l.rc.Status.ProxyAddress
	if addr == "" {
		for _, n := range []string{checkProxy, checkRemoteCA, checkServerName} {
			l.add(check{Name: n, Result: resultSkip, Item: "proxy address", Detail: "no credentials yet"})
		}
		return
	}
	proxyItem := fmt.Sprintf("proxy address %s (from %s)", addr, l.exportRef())
	if err := tlsprobe.DialTCP(ctx, addr, l.d.timeout); err != nil {
		l.add(check{Name: checkProxy, Result: resultFail, Item: proxyItem, Detail: "unreachable from here: " + err.Error(),
			Fix: fmt.Sprintf("make %s reachable from this environment's Elasticsearch (a LoadBalancer Service, firewall rules), or correct spec.proxyAddress or spec.service of %s", addr, l.exportRef())})
		l.add(check{Name: checkRemoteCA, Result: resultSkip, Item: "remote cluster server " + addr, Detail: "not reached", Agent: agentProbe(rc)})
		l.add(check{Name: checkServerName, Result: resultSkip, Item: "server name " + rc.Status.ServerName, Detail: "not reached"})
		return
	}
	l.add(check{Name: checkProxy, Result: resultOK, Item: proxyItem, Detail: "accepts TCP connections from this machine"})
	ca := l.remoteCA(ctx)
	ca.Agent = agentProbe(rc)
	l.add(ca)
	l.add(l.serverName())
}

func (l *linkRun) remoteCA(ctx context.Context) check {
	rc, addr := l.rc, l.rc.Status.ProxyAddress
	cmName := wiring.CAConfigMapName(rc.Spec.ElasticsearchRef.Name)
	c := check{Name: checkRemoteCA, Item: fmt.Sprintf("ConfigMap %s/%s key %s", rc.Namespace, cmName, wiring.CAFileKey)}
	chain, err := tlsprobe.Handshake(ctx, addr, rc.Status.ServerName, l.d.timeout)
	if err != nil {
		c.Item = "remote cluster server " + addr
		c.Result, c.Detail = resultFail, "TLS handshake failed: "+err.Error()
		c.Fix = "check that " + addr + " is the remote cluster server (port 9443) of the exported Elasticsearch"
		return c
	}
	l.chain = chain
	leaf := chain[0]
	c.Certificate = describeCert(leaf, l.now)
	cm, err := l.d.local.kube.CoreV1().ConfigMaps(rc.Namespace).Get(ctx, cmName, metav1.GetOptions{})
	if err != nil {
		c.Result, c.Detail, c.Fix = resultFail, "cannot read the CA bundle Elasticsearch trusts: "+err.Error(), "check that the agent of this environment runs: it writes the ConfigMap"
		return c
	}
	cas, err := pemutil.ParseCertificates([]byte(cm.Data[wiring.CAFileKey]), pemutil.Limits{})
	if err != nil {
		c.Result, c.Detail, c.Fix = resultFail, "the CA bundle is unusable: "+err.Error(), "check that the agent of this environment runs: it rewrites the ConfigMap"
		return c
	}
	if err := tlsprobe.VerifyChain(chain, cas, l.now); err != nil {
		c.Result = resultFail
		c.Detail = fmt.Sprintf("the certificate presented at %s, issued by %s, does not chain to the %d CA(s) it holds (%s): %v",
			addr, issuerName(leaf), len(cas), describeCAs(cas, l.now), err)
		c.Fix = fmt.Sprintf("the copy of %s's transport CA is stale: the agent of this environment rewrites it from the peer's credentials, so check that it runs and that Peer %s is connected", rc.Spec.Peer, rc.Spec.Peer)
		if !sameCAs(cas, rc.Status.RemoteCertificateAuthorities) {
			c.Fix += "; the ConfigMap differs from what the agent last applied (RemoteCluster status.remoteCertificateAuthorities), so it was changed outside ecklink"
		}
		return c
	}
	if !leaf.NotAfter.After(l.now) {
		c.Result, c.Detail = resultFail, fmt.Sprintf("the certificate presented at %s expired %s", addr, ago(l.now, leaf.NotAfter))
		c.Fix = "ECK renews it: check the ECK operator in " + rc.Spec.Peer
		return c
	}
	c.Result, c.Detail = resultOK, fmt.Sprintf("the certificate presented at %s chains to a CA in the bundle (%s)", addr, describeCAs(cas, l.now))
	return c
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return "CN=" + c.Issuer.CommonName
	}
	return c.Issuer.String()
}

func describeCAs(cas []*x509.Certificate, now time.Time) string {
	var parts []string
	for _, ca := range cas {
		parts = append(parts, fmt.Sprintf("%s %s, expires %s", pemutil.Describe(ca), short(pemutil.Fingerprint(ca)), until(now, ca.NotAfter)))
	}
	return strings.Join(parts, "; ")
}

// sameCAs reports whether the bundle holds exactly the CAs the agent reported applying.
func sameCAs(cas []*x509.Certificate, applied []v1alpha1.CertificateInfo) bool {
	var a, b []string
	for _, c := range cas {
		a = append(a, pemutil.Fingerprint(c))
	}
	for _, c := range applied {
		b = append(b, c.Fingerprint)
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func (l *linkRun) serverName() check {
	sn := l.rc.Status.ServerName
	c := check{Name: checkServerName, Item: fmt.Sprintf("server name %s (from %s)", dash(sn), l.exportRef())}
	if l.chain == nil {
		c.Result, c.Detail = resultSkip, "no certificate to check"
		return c
	}
	if sn == "" {
		c.Result, c.Detail = resultWarn, "no server name: Elasticsearch verifies the proxy address's host instead"
		return c
	}
	ci := describeCert(l.chain[0], l.now)
	if err := l.chain[0].VerifyHostname(sn); err != nil {
		c.Result = resultFail
		c.Detail = fmt.Sprintf("not among the SANs of the certificate presented at %s: %s", l.rc.Status.ProxyAddress, ci.sans())
		c.Fix = fmt.Sprintf("set spec.serverName of %s to one of these SANs, or remove it for ECK's default <elasticsearch>-es-remote-cluster.<namespace>.svc", l.exportRef())
		for _, d := range ci.DNSNames {
			if strings.Contains(d, "-es-remote-cluster.") {
				c.Fix = fmt.Sprintf("set spec.serverName of %s to %s (a SAN of the certificate), or remove it for that default", l.exportRef(), d)
			}
		}
		return c
	}
	c.Result, c.Detail = resultOK, "among the certificate's SANs ("+ci.sans()+")"
	return c
}

// apiKey: the applied key is live; with the peer's API, it is the key the export issued and
// Elasticsearch there still knows it.
func (l *linkRun) apiKey(ctx context.Context) {
	rc := l.rc
	k := rc.Status.APIKey
	if k == nil {
		l.add(check{Name: checkAPIKey, Result: resultSkip, Item: fmt.Sprintf("RemoteCluster %s/%s status.apiKey", rc.Namespace, rc.Name), Detail: "no API key applied yet"})
		return
	}
	c := check{Name: checkAPIKey, Item: fmt.Sprintf("API key %s", k.ID)}
	if k.Expiration != nil && !k.Expiration.After(l.now) {
		c.Result, c.Detail = resultFail, "expired "+ago(l.now, k.Expiration.Time)
		c.Fix = fmt.Sprintf("the agent of %s rotates keys before they expire: check that it runs and is connected", rc.Spec.Peer)
		l.add(c)
		return
	}
	expiry := "never expires"
	if k.Expiration != nil {
		expiry = "expires " + until(l.now, k.Expiration.Time)
	}
	if l.d.peer == nil {
		c.Result, c.Detail = resultOK, expiry+" (give --peer-context to check it in "+rc.Spec.Peer+")"
		l.add(c)
		return
	}
	l.add(l.peerKey(ctx, c, expiry))
}

func (l *linkRun) peerKey(ctx context.Context, c check, expiry string) check {
	rc, d := l.rc, l.d
	exp, err := d.peer.crds.ClusterExports().Get(ctx, rc.Spec.Export.Namespace, rc.Spec.Export.Name)
	if err != nil {
		c.Result, c.Detail = resultFail, "cannot read "+l.exportRef()+": "+err.Error()
		return c
	}
	issued := ""
	for _, x := range exp.Status.Links {
		if x.Peer == d.environment && x.LocalNamespace == rc.Namespace && x.LocalElasticsearch == rc.Spec.ElasticsearchRef.Name && x.Alias == rc.Spec.Alias {
			issued = x.APIKeyID
		}
	}
	id := rc.Status.APIKey.ID
	target := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	client, err := d.peerES.Client(ctx, target)
	var key *elastic.Key
	if err == nil {
		key, err = client.GetKey(ctx, id)
	}
	switch {
	case err != nil && elastic.IsNotFound(err):
		c.Result, c.Detail = resultFail, fmt.Sprintf("unknown to Elasticsearch %s in %s (deleted)", target, rc.Spec.Peer)
		c.Fix = fmt.Sprintf("the agent of %s issues a new key when it runs and is connected: check it", rc.Spec.Peer)
	case err == nil && key.Invalidated:
		c.Result, c.Detail = resultFail, fmt.Sprintf("invalidated in Elasticsearch %s of %s", target, rc.Spec.Peer)
		c.Fix = fmt.Sprintf("the agent of %s replaces invalidated keys when it runs and reaches that Elasticsearch: check its logs and ClusterExport status; do not invalidate ecklink's keys by hand", rc.Spec.Peer)
	case err == nil && !key.Expiration.IsZero() && !key.Expiration.After(l.now):
		c.Result, c.Detail = resultFail, fmt.Sprintf("expired in Elasticsearch %s of %s", target, rc.Spec.Peer)
		c.Fix = fmt.Sprintf("the agent of %s rotates keys before they expire: check that it runs", rc.Spec.Peer)
	case issued != "" && issued != id:
		c.Result, c.Detail = resultWarn, fmt.Sprintf("%s issued key %s, this environment applies %s: a rotation is under way", l.exportRef(), issued, id)
	case err != nil:
		c.Result, c.Detail = resultOK, fmt.Sprintf("%s, issued by %s (Elasticsearch %s not reachable from here: %v)", expiry, l.exportRef(), target, err)
	default:
		c.Result, c.Detail = resultOK, fmt.Sprintf("%s, active in Elasticsearch %s of %s", expiry, target, rc.Spec.Peer)
	}
	return c
}

// remoteInfo: the local Elasticsearch reports the alias connected, with the applied settings.
func (l *linkRun) remoteInfo(ctx context.Context) {
	rc := l.rc
	target := elastic.Target{Namespace: rc.Namespace, Name: rc.Spec.ElasticsearchRef.Name}
	c := check{Name: checkRemoteInfo, Item: fmt.Sprintf("Elasticsearch %s GET /_remote/info [%s]", target, rc.Spec.Alias)}
	client, err := l.d.localES.Client(ctx, target)
	var info map[string]elastic.RemoteInfo
	if err == nil {
		info, err = client.RemoteInfo(ctx)
	}
	if err != nil && elastic.UserNotReady(err) {
		c.Result, c.Detail = resultSkip, fmt.Sprintf("not callable as the agent's user (%v)", err)
		c.Fix = "the agent provisions its user once a link needs the cluster, and Elasticsearch loads it within the kubelet's sync period; give --use-elastic-user if the agent runs with elasticsearch.useElasticUser"
		l.add(c)
		return
	}
	if err != nil {
		c.Result, c.Detail = resultSkip, fmt.Sprintf("not reachable from here (%v); give --elasticsearch-endpoint %s=https://host:port", err, target)
		l.add(c)
		return
	}
	ri, ok := info[rc.Spec.Alias]
	switch {
	case !ok:
		c.Result, c.Detail = resultFail, "the alias is not configured"
		c.Fix = "the agent sets cluster.remote." + rc.Spec.Alias + " once credentials are applied: see the credentials check"
	case ri.ProxyAddress != rc.Status.ProxyAddress || (rc.Status.ServerName != "" && ri.ServerName != rc.Status.ServerName):
		c.Result = resultFail
		c.Detail = fmt.Sprintf("Elasticsearch dials %s (server name %s), the agent applied %s (server name %s)", ri.ProxyAddress, dash(ri.ServerName), rc.Status.ProxyAddress, dash(rc.Status.ServerName))
		c.Fix = "the agent updates the settings on its next pass; if they stay different, check its logs"
	case !ri.Connected:
		c.Result, c.Detail = resultFail, "connected: false"
		c.Fix = "the checks above pass, so the credentials are the likely cause: run doctor with --peer-context to check the API key, and see the local Elasticsearch logs"
		if l.failed(checkRemoteCA) || l.failed(checkServerName) || l.failed(checkProxy) || l.failed(checkAPIKey) {
			c.Fix = "see the failing check above"
		}
	default:
		c.Result, c.Detail = resultOK, fmt.Sprintf("connected, %d socket(s) to %s", ri.NumSocketsConnected, ri.ProxyAddress)
	}
	l.add(c)
}

// agentProbe is the agent's own verdict on the handshake, from its ProbeSucceeded condition; nil
// when the agent has not probed the link (probe off, certificate model, an agent before 0.2).
func agentProbe(rc *v1alpha1.RemoteCluster) *agentView {
	c := condition(rc.Status.Conditions, v1alpha1.ConditionProbeSucceeded)
	if c == nil {
		return nil
	}
	v := &agentView{Result: resultFail, Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.UTC()}
	if c.Status == metav1.ConditionTrue {
		v.Result = resultOK
	}
	return v
}
