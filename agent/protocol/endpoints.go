package protocol

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// ReasonInvalidEndpoints refuses a trust update whose announced endpoints are not host:port
// addresses, or too many.
const ReasonInvalidEndpoints = "InvalidEndpoints"

// maxAnnouncedEndpoints bounds what a peer can make this agent keep and dial (as Peer
// spec.endpoints).
const maxAnnouncedEndpoints = 16

// endpointPattern is the pattern of Peer spec.endpoints: a DNS name, IPv4 address or bracketed
// IPv6 address, and a port 1-65535.
var endpointPattern = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`)

// validateAnnounced checks the endpoints a peer announces: at most 16, each host:port as Peer
// spec.endpoints takes them (at most 261 characters). Duplicates are dropped, order kept.
func validateAnnounced(eps []string) ([]string, error) {
	if len(eps) > maxAnnouncedEndpoints {
		return nil, fmt.Errorf("%d endpoints, at most %d allowed", len(eps), maxAnnouncedEndpoints)
	}
	out := make([]string, 0, len(eps))
	for i, ep := range eps {
		if len(ep) > 261 || !endpointPattern.MatchString(ep) {
			return nil, fmt.Errorf("endpoints[%d]: %.64q is not host:port", i, ep)
		}
		if !slices.Contains(out, ep) {
			out = append(out, ep)
		}
	}
	return out, nil
}

// learnEndpoints records the endpoints a peer announced in its Peer status, where the peer
// controller reads them to dial (they come first, spec.endpoints after). An unchanged list
// writes nothing.
func (t *TrustSync) learnEndpoints(ctx context.Context, p *v1alpha1.Peer, eps []string) error {
	if slices.Equal(p.Status.Endpoints, eps) && (len(eps) > 0 || p.Status.EndpointsUpdated != nil) {
		return nil
	}
	_, err := t.cfg.CRDs.Peers().UpdateStatus(ctx, p, func(x *v1alpha1.Peer) error {
		if slices.Equal(x.Status.Endpoints, eps) && (len(eps) > 0 || x.Status.EndpointsUpdated != nil) {
			return nil
		}
		x.Status.Endpoints = slices.Clone(eps)
		x.Status.EndpointsUpdated = &metav1.Time{Time: t.cfg.Now().Truncate(time.Second)}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to record the endpoints of peer %s: %w", p.Spec.Environment, err)
	}
	t.log.Info("peer announced its endpoints", "peer", p.Spec.Environment, "peer_endpoints", eps, "previous", p.Status.Endpoints)
	return nil
}
