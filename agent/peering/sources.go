package peering

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// sourceTable tracks, per source address of anonymous clients, their open connections and a
// token bucket for Pair calls. It holds at most max sources: when a new source arrives at a full
// table, the least recently seen source without an open connection is forgotten (its bucket
// starts full again if it returns). Total anonymous connections are capped below max, so such a
// source always exists. Memory is thus bounded whatever the number of addresses a client uses.
type sourceTable struct {
	max, perSource, maxConns int
	rate                     float64
	burst                    int

	mu    sync.Mutex
	conns int
	byKey map[string]*list.Element
	lru   *list.List // of *source, most recently seen first
}

type source struct {
	key    string
	conns  int
	bucket *tokenBucket
}

func newSourceTable(l PortLimits) *sourceTable {
	return &sourceTable{
		max: l.MaxSources, perSource: l.MaxAnonymousPerSource, maxConns: l.MaxAnonymous,
		rate: l.PairRate, burst: l.PairBurst,
		byKey: map[string]*list.Element{}, lru: list.New(),
	}
}

// touch returns the source of key, created if needed, and marks it recently seen.
func (t *sourceTable) touch(key string, now time.Time) *source {
	if e, ok := t.byKey[key]; ok {
		t.lru.MoveToFront(e)
		return e.Value.(*source)
	}
	for t.lru.Len() >= t.max {
		if !t.evictOne() {
			break
		}
	}
	s := &source{key: key, bucket: newTokenBucket(t.rate, t.burst, now)}
	t.byKey[key] = t.lru.PushFront(s)
	return s
}

// evictOne forgets the least recently seen source without an open connection.
func (t *sourceTable) evictOne() bool {
	for e := t.lru.Back(); e != nil; e = e.Prev() {
		if s := e.Value.(*source); s.conns == 0 {
			t.lru.Remove(e)
			delete(t.byKey, s.key)
			return true
		}
	}
	return false
}

// openConn admits an anonymous connection from key, or returns the reason it is refused. The
// returned release must be called once when the connection closes.
func (t *sourceTable) openConn(key string, now time.Time) (func(), string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns >= t.maxConns {
		return nil, refusedAnonymousCapacity
	}
	s := t.touch(key, now)
	if s.conns >= t.perSource {
		return nil, refusedSourceCapacity
	}
	s.conns++
	t.conns++
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			s.conns--
			t.conns--
		})
	}, ""
}

// allowPair takes a token from key's bucket; when none is left it returns how long until one is.
func (t *sourceTable) allowPair(key string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.touch(key, now).bucket
	if b.allow(now) {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// len is the number of sources tracked.
func (t *sourceTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// sourceKey is the rate-limiting key of a client address: the IP for IPv4, the /64 prefix for
// IPv6 (one host usually holds a whole /64).
func sourceKey(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if ip4 := tcp.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return (&net.IPNet{IP: tcp.IP.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
