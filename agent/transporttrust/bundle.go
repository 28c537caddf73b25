// Package transporttrust manages the CAs ecklink adds to an Elasticsearch's transport trust, for
// the certificate security model: the ConfigMap named by the resource's
// spec.transport.tls.certificateAuthorities, whose key ca.crt ECK appends to the transport CA
// bundle of every node (<es>-es-<nodeset>-es-transport-certs, ca.crt) and to
// <es>-es-transport-certs-public.
//
// The ConfigMap may be the user's: ecklink then joins it without clobbering what the user put
// there. Every CA ecklink adds is recorded, by fingerprint, under an owner (the link that needs
// it) in an annotation; only recorded CAs are ever removed, and only when no owner needs them
// any more. When the Elasticsearch names no ConfigMap, ecklink creates its own and wires it
// (managed mode), and takes both away when the last owner goes.
package transporttrust

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/internal/pemutil"
)

const (
	// Key is the ConfigMap key ECK reads the extra transport CAs from.
	Key = "ca.crt"
	// AnnotationCAs records, on the ConfigMap, the CAs ecklink added: a JSON object mapping
	// each owner to the SHA-256 fingerprints of its CAs.
	AnnotationCAs = "ecklink.io/transport-cas"
)

// Owners reads which CAs (fingerprints) each owner added to the ConfigMap.
func Owners(cm *corev1.ConfigMap) (map[string][]string, error) {
	out := map[string][]string{}
	raw := cm.Annotations[AnnotationCAs]
	if raw == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		// Refuse to guess: a wrong guess would remove a CA the user relies on.
		return nil, fmt.Errorf("invalid annotation %s on ConfigMap %s/%s: %w", AnnotationCAs, cm.Namespace, cm.Name, err)
	}
	return out, nil
}

// block is one PEM block of a bundle and the text before it.
type block struct {
	lead []byte // text between the previous block and this one (comments, blank lines)
	text []byte // the block as written, up to and including the end line's newline
	cert *x509.Certificate
	fp   string // "" when the block is not a parsable certificate
}

var beginMarker = []byte("-----BEGIN")

// split cuts a bundle into its PEM blocks, keeping every byte: the blocks' texts, the text
// between them and after the last one (tail). Malformed PEM stays in the text it appears in.
func split(data []byte) ([]block, []byte) {
	var blocks []block
	rest := data
	for {
		if !bytes.Contains(rest, beginMarker) {
			return blocks, rest
		}
		p, next := pem.Decode(rest)
		if p == nil {
			return blocks, rest
		}
		consumed := rest[:len(rest)-len(next)]
		// pem.Decode skips malformed blocks: the decoded one is the last BEGIN consumed.
		start := bytes.LastIndex(consumed, beginMarker)
		b := block{lead: consumed[:start], text: consumed[start:]}
		if p.Type == pemutil.TypeCertificate {
			if c, err := x509.ParseCertificate(p.Bytes); err == nil {
				b.cert, b.fp = c, pemutil.Fingerprint(c)
			}
		}
		blocks = append(blocks, b)
		rest = next
	}
}

// Update sets, in cm, the CAs of each owner in want and returns whether cm changed. For an owner
// with CAs, the result is those CAs plus the CAs it had before that are still valid at now (a
// peer's previous CA keeps verifying its nodes' certificates until it expires, and its nodes may
// still present them), at most pemutil.MaxRetainedCAs, the given ones first (pemutil.Retain,
// the one retention policy). An owner with no CAs (nil) is removed. Owners not in want are left
// as they are.
//
// The user's content stays byte for byte: only blocks recorded in AnnotationCAs are taken out,
// and ecklink's blocks are written after the user's. A CA the user already has is not added or
// recorded again, so removing an owner never removes a CA the user put there. Update is
// idempotent.
func Update(cm *corev1.ConfigMap, want map[string][]*x509.Certificate, now time.Time) (bool, error) {
	old, err := Owners(cm)
	if err != nil {
		return false, err
	}
	ours := map[string]bool{}
	for _, fps := range old {
		for _, fp := range fps {
			ours[fp] = true
		}
	}
	blocks, tail := split([]byte(cm.Data[Key]))
	users := map[string]bool{}
	known := map[string]*x509.Certificate{} // fingerprint -> certificate ecklink held before
	for _, b := range blocks {
		switch {
		case b.fp == "":
		case ours[b.fp]:
			known[b.fp] = b.cert
		default:
			users[b.fp] = true
		}
	}
	owners := maps.Clone(old)
	for _, owner := range slices.Sorted(maps.Keys(want)) {
		certs := want[owner]
		if certs == nil {
			delete(owners, owner)
			continue
		}
		owners[owner] = choose(certs, old[owner], known, users, now)
		for _, c := range certs {
			known[pemutil.Fingerprint(c)] = c
		}
	}
	for owner, fps := range owners {
		// A recorded CA whose block someone deleted by hand is no longer held.
		owners[owner] = slices.DeleteFunc(slices.Clone(fps), func(fp string) bool { return known[fp] == nil })
	}

	// The user's text without ecklink's blocks, then ecklink's blocks in owner order.
	var out bytes.Buffer
	for _, b := range blocks {
		out.Write(b.lead)
		if b.fp == "" || !ours[b.fp] {
			out.Write(b.text)
		}
	}
	out.Write(tail)
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		// ECK concatenates the bundles as they are: a missing newline would fuse two blocks.
		out.WriteByte('\n')
	}
	written := map[string]bool{}
	for _, owner := range slices.Sorted(maps.Keys(owners)) {
		for _, fp := range owners[owner] {
			if !written[fp] {
				written[fp] = true
				out.Write(pem.EncodeToMemory(&pem.Block{Type: pemutil.TypeCertificate, Bytes: known[fp].Raw}))
			}
		}
	}

	var annotation string
	if len(owners) > 0 {
		data, err := json.Marshal(owners)
		if err != nil {
			return false, fmt.Errorf("failed to encode annotation %s: %w", AnnotationCAs, err)
		}
		annotation = string(data)
	}
	_, hadKey := cm.Data[Key]
	changed := !hadKey || cm.Data[Key] != out.String() || cm.Annotations[AnnotationCAs] != annotation
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[Key] = out.String()
	if annotation == "" {
		delete(cm.Annotations, AnnotationCAs)
	} else {
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[AnnotationCAs] = annotation
	}
	return changed, nil
}

// choose returns the fingerprints an owner keeps, by the one retention policy (pemutil.Retain):
// the given CAs, then its previous ones still valid, newest first, at most pemutil.MaxRetainedCAs; CAs the
// user already trusts are left to the user.
func choose(certs []*x509.Certificate, previous []string, known map[string]*x509.Certificate, users map[string]bool, now time.Time) []string {
	var prev []*x509.Certificate
	for _, fp := range previous {
		if c := known[fp]; c != nil {
			prev = append(prev, c)
		}
	}
	out := []string{}
	for _, c := range pemutil.Retain(certs, prev, now, func(fp string) bool { return users[fp] }) {
		out = append(out, pemutil.Fingerprint(c))
	}
	return out
}

// Certificates returns each owner's CAs as held in cm.
func Certificates(cm *corev1.ConfigMap) (map[string][]*x509.Certificate, error) {
	owners, err := Owners(cm)
	if err != nil {
		return nil, err
	}
	byFP := map[string]*x509.Certificate{}
	blocks, _ := split([]byte(cm.Data[Key]))
	for _, b := range blocks {
		if b.fp != "" {
			byFP[b.fp] = b.cert
		}
	}
	out := make(map[string][]*x509.Certificate, len(owners))
	for owner, fps := range owners {
		list := []*x509.Certificate{}
		for _, fp := range fps {
			if c := byFP[fp]; c != nil {
				list = append(list, c)
			}
		}
		out[owner] = list
	}
	return out, nil
}

// OwnCA returns, as PEM, the first certificate of an Elasticsearch's
// <es>-es-transport-certs-public ca.crt: its own transport CA, which issues its nodes'
// certificates. ECK appends the CAs of spec.transport.tls.certificateAuthorities after it, and
// those include every peer CA ecklink added: passing them on would make one peer trust another.
func OwnCA(bundle []byte, now time.Time) ([]byte, error) {
	// Only the first block is read: the rest is the user's and other peers' material, which must
	// not stop this one from being served.
	p, _ := pem.Decode(bundle)
	if p == nil {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	own := pem.EncodeToMemory(&pem.Block{Type: p.Type, Bytes: p.Bytes})
	if _, err := pemutil.ValidateCABundle(own, now, pemutil.DefaultLimits); err != nil {
		return nil, err
	}
	return own, nil
}

// OwnCAs is OwnCA with a memory of the bundles it read: every link pass of an exported
// Elasticsearch reads the same ECK Secret, and parsing it each time was a per-link cost of
// every resync. A bundle is parsed again once the time is outside its CA's validity, so an
// expired CA is refused as OwnCA refuses it. The memory holds at most maxOwnCAs bundles.
type OwnCAs struct {
	mu sync.Mutex
	m  map[string]ownCA
}

type ownCA struct {
	pem                 []byte
	notBefore, notAfter time.Time
}

const maxOwnCAs = 64

// Of returns OwnCA(bundle, now), parsed once per bundle while its CA is valid.
func (o *OwnCAs) Of(bundle []byte, now time.Time) ([]byte, error) {
	o.mu.Lock()
	c, ok := o.m[string(bundle)]
	o.mu.Unlock()
	if ok && !now.Before(c.notBefore) && now.Before(c.notAfter) {
		return c.pem, nil
	}
	own, err := OwnCA(bundle, now)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(own, pemutil.DefaultLimits)
	if err != nil || len(certs) == 0 {
		return own, nil // OwnCA validated it; not remembered
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= maxOwnCAs {
		o.m = map[string]ownCA{}
	}
	o.m[string(bundle)] = ownCA{pem: own, notBefore: certs[0].NotBefore, notAfter: certs[0].NotAfter}
	return own, nil
}
