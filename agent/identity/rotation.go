package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
)

// SetPromoteGate installs a function consulted (every GatePoll) while a next CA is staged; when it
// returns true the next CA is promoted before Overlap has passed. The peering layer uses it to
// promote as soon as every peer acknowledged the bundle holding the next CA. nil removes the gate.
func (i *Identity) SetPromoteGate(gate func() bool) {
	i.mu.Lock()
	i.gate = gate
	i.mu.Unlock()
	i.poke()
}

// StageNextCA creates the next agent CA and adds it to the bundle (persisted in the Secret and
// published in the ConfigMap) without signing with it yet, then notifies bundle subscribers so
// peers learn to trust it before it is used. It does nothing if a next CA is already staged.
func (i *Identity) StageNextCA(ctx context.Context) error {
	return i.step(func(cur *state) error {
		if cur.next != nil {
			return nil
		}
		now := i.cfg.Clock.Now()
		next, err := newCA(i.cfg.Environment, now, i.cfg.CAValidity)
		if err != nil {
			return err
		}
		st := &state{active: cur.active, next: next, nextStaged: now, previous: cur.previous, promoted: cur.promoted}
		if err := i.commit(ctx, st); err != nil {
			return fmt.Errorf("failed to stage next CA: %w", err)
		}
		i.log.Info("staged next agent CA", "fingerprint", pemutil.Fingerprint(next.cert), "expires", next.cert.NotAfter)
		return nil
	})
}

// PromoteNextCA makes the staged CA the signer and re-issues the leaf with it. The old CA stays in
// the bundle as the previous CA until no leaf it issued can still be valid (one leaf lifetime),
// at most until just before it expires, or until RetirePrevious is called. The new leaf is in
// place before subscribers learn of the new bundle: peers told of the promotion reconnect to get
// a leaf of the new CA, and must not get the old one.
func (i *Identity) PromoteNextCA(ctx context.Context) error {
	return i.step(func(cur *state) error {
		if cur.next == nil {
			return fmt.Errorf("failed to promote next CA: none is staged")
		}
		now := i.cfg.Clock.Now()
		l, err := issueLeaf(cur.next, i.cfg.Environment, i.cfg.Endpoints, now, i.cfg.LeafValidity)
		if err != nil {
			return err
		}
		st := &state{active: cur.next, previous: cur.active.cert, promoted: now}
		if err := i.commitLeaf(ctx, st, l); err != nil {
			return fmt.Errorf("failed to promote next CA: %w", err)
		}
		i.log.Info("promoted next agent CA", "fingerprint", pemutil.Fingerprint(st.active.cert), "previous", pemutil.Fingerprint(st.previous),
			"previous_retires", i.previousRetireAt(st))
		return nil
	})
}

// RetirePrevious removes the previous CA from the bundle. It does nothing if there is none.
func (i *Identity) RetirePrevious(ctx context.Context) error {
	return i.step(func(cur *state) error {
		if cur.previous == nil {
			return nil
		}
		st := &state{active: cur.active, next: cur.next, nextStaged: cur.nextStaged}
		if err := i.commit(ctx, st); err != nil {
			return fmt.Errorf("failed to retire previous CA: %w", err)
		}
		i.log.Info("retired previous agent CA", "fingerprint", pemutil.Fingerprint(cur.previous))
		return nil
	})
}

// step runs f with the current state, one rotation step at a time (opMu).
func (i *Identity) step(f func(cur *state) error) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	cur, err := i.current()
	if err != nil {
		return err
	}
	return f(cur)
}

func (i *Identity) current() (*state, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.st == nil {
		return nil, fmt.Errorf("identity not initialized")
	}
	return i.st, nil
}

// commit persists st, makes it current, republishes the ConfigMap and notifies subscribers.
// Persisting first means a restart never forgets a CA that peers were already told about.
func (i *Identity) commit(ctx context.Context, st *state) error { return i.commitLeaf(ctx, st, nil) }

// commitLeaf is commit that also installs leaf (when not nil) together with st.
func (i *Identity) commitLeaf(ctx context.Context, st *state, leaf *leaf) error {
	if err := i.persist(ctx, st); err != nil {
		return err
	}
	i.mu.Lock()
	i.st = st
	if leaf != nil {
		i.leaf = leaf
	}
	i.mu.Unlock()
	i.notify()
	i.poke()
	// The Secret is the source of truth; a failed ConfigMap update is repaired by the next
	// commit or restart, so it must not undo the rotation step.
	if err := i.publish(ctx, st); err != nil {
		i.log.Warn("failed to publish identity", "error", err)
	}
	return nil
}

// previousRetireAt is when the previous CA of st leaves the bundle: once no leaf it issued can be
// valid any more (this agent's leaf was re-issued at the promotion, and leaves live LeafValidity),
// and in any case just before it expires, so that a published bundle never holds an expired CA,
// which peers would refuse.
func (i *Identity) previousRetireAt(st *state) time.Time {
	at := retireAt(st.previous)
	if !st.promoted.IsZero() {
		at = earliest(at, st.promoted.Add(i.cfg.LeafValidity))
	}
	return at
}

// PromotedAt is when the active CA was promoted, zero if it never was (or it is unknown).
func (i *Identity) PromotedAt() time.Time {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.st == nil || i.st.previous == nil {
		return time.Time{}
	}
	return i.st.promoted
}
