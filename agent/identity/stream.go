package identity

import (
	"crypto/x509"
	"fmt"
	"time"
)

// StreamRenewAt is the fraction of a leaf's life (NotBefore to NotAfter) at which a dialed
// stream is replaced by a new connection. Leaves renew at 2/3 of the time between issue and
// expiry, and NotBefore is backdated by at most a tenth of the validity (certificate times are
// whole seconds), so at 4/5 of the life the side that renewed already holds its new leaf (for
// leaves of a few seconds and more), and a fifth of the life is left to reconnect before the
// peer ends the stream at the old leaf's expiry.
const StreamRenewAt = 0.8

// StreamChecker checks the certificates of live peer streams for the peering layer (it
// implements peering.Credentials): a stream was authenticated once, by its handshake; the
// checker holds it to the current trust and clock for as long as it lasts.
type StreamChecker struct {
	id    *Identity
	trust TrustSource
}

// StreamChecker returns a checker of live streams against trust.
func (i *Identity) StreamChecker(trust TrustSource) *StreamChecker {
	return &StreamChecker{id: i, trust: trust}
}

// VerifyPeer verifies chain, as peer presented it for usage, against the CAs trusted for peer
// now: a stream whose peer certificate expired or no longer chains to one of them must end.
func (c *StreamChecker) VerifyPeer(peer string, chain []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if _, err := c.id.VerifyPeer(chain, peer, usage, c.trust); err != nil {
		return fmt.Errorf("failed to verify the certificate of %s again: %w", peer, err)
	}
	return nil
}

// RenewAt tells when a stream this agent dialed to peer, with its leaf local and the peer's
// chain, should be replaced by a new connection, and why:
//   - now, when local was not issued by this agent's active CA (a CA was promoted): the new
//     connection presents a leaf of the new CA, so the old one can be retired;
//   - now, when the peer's leaf was not issued by the first CA trusted for the peer, its active
//     one (the peer promoted a CA): the new handshake gets the peer's leaf of its new CA;
//   - else at StreamRenewAt of the life of whichever leaf reaches it first.
func (c *StreamChecker) RenewAt(peer string, local *x509.Certificate, chain []*x509.Certificate) (time.Time, string) {
	now := c.id.cfg.Clock.Now()
	if local != nil {
		if active := c.id.activeCA(); active != nil && !issuedBy(local, active) {
			return now, "this agent signs with a new CA"
		}
	}
	var peerLeaf *x509.Certificate
	if len(chain) > 0 {
		peerLeaf = chain[0]
		if cas := c.trust.PeerCAs(peer); len(cas) > 0 && validAt(cas[0], now) && !issuedBy(peerLeaf, cas[0]) {
			return now, "the peer signs with a new CA"
		}
	}
	var at time.Time
	reason := ""
	for _, l := range []struct {
		cert *x509.Certificate
		why  string
	}{{local, "this agent's leaf certificate nears its expiry"}, {peerLeaf, "the peer's leaf certificate nears its expiry"}} {
		if l.cert == nil {
			continue
		}
		if t := renewPoint(l.cert); at.IsZero() || t.Before(at) {
			at, reason = t, l.why
		}
	}
	return at, reason
}

// renewPoint is StreamRenewAt of cert's life.
func renewPoint(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(time.Duration(float64(life) * StreamRenewAt))
}

func issuedBy(leaf, ca *x509.Certificate) bool { return leaf.CheckSignatureFrom(ca) == nil }

func validAt(c *x509.Certificate, t time.Time) bool {
	return !t.Before(c.NotBefore) && !t.After(c.NotAfter)
}

// activeCA is the CA that signs this agent's leaves, nil before Init.
func (i *Identity) activeCA() *x509.Certificate {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.st == nil {
		return nil
	}
	return i.st.active.cert
}

// IssuedByActiveCA reports whether leaf was issued by this agent's active CA.
func (i *Identity) IssuedByActiveCA(leaf *x509.Certificate) bool {
	active := i.activeCA()
	return leaf != nil && active != nil && issuedBy(leaf, active)
}
