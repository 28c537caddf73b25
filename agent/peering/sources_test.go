package peering

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func TestSourceTableConnections(t *testing.T) {
	now := time.Unix(0, 0)
	tbl := newSourceTable(PortLimits{MaxSources: 100, MaxAnonymous: 3, MaxAnonymousPerSource: 2, PairRate: 1, PairBurst: 1})
	type open struct {
		src    string
		reason string
	}
	steps := []open{
		{"a", ""},
		{"a", ""},
		{"a", refusedSourceCapacity}, // a holds its two
		{"b", ""},
		{"c", refusedAnonymousCapacity}, // three open in all
	}
	var releases []func()
	for i, s := range steps {
		release, reason := tbl.openConn(s.src, now)
		if reason != s.reason {
			t.Fatalf("step %d: openConn(%s) refused %q, want %q", i, s.src, reason, s.reason)
		}
		if release != nil {
			releases = append(releases, release)
		}
	}
	releases[0]()
	releases[0]() // a second Close releases nothing more
	if _, reason := tbl.openConn("c", now); reason != "" {
		t.Fatalf("after a release: refused %q", reason)
	}
	if _, reason := tbl.openConn("a", now); reason != refusedAnonymousCapacity {
		t.Fatalf("a second release freed a second slot: %q", reason)
	}
}

func TestSourceTableIsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	tbl := newSourceTable(PortLimits{MaxSources: 16, MaxAnonymous: 4, MaxAnonymousPerSource: 1, PairRate: 0.1, PairBurst: 1})
	// Four sources hold a connection: they are never forgotten, whatever else arrives.
	for i := range 4 {
		if _, reason := tbl.openConn(fmt.Sprintf("held-%d", i), now); reason != "" {
			t.Fatal(reason)
		}
	}
	for i := range 100000 {
		tbl.allowPair(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
	}
	if n := tbl.len(); n != 16 {
		t.Fatalf("table holds %d sources, want its bound 16", n)
	}
	for i := range 4 {
		if _, ok := tbl.byKey[fmt.Sprintf("held-%d", i)]; !ok {
			t.Fatalf("source held-%d with an open connection was forgotten", i)
		}
	}
}

func TestSourceTableRateLimit(t *testing.T) {
	now := time.Unix(0, 0)
	tbl := newSourceTable(PortLimits{MaxSources: 16, MaxAnonymous: 4, MaxAnonymousPerSource: 1, PairRate: 0.5, PairBurst: 2})
	tests := []struct {
		advance time.Duration
		src     string
		ok      bool
		wait    time.Duration
	}{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 2 * time.Second}, // burst spent: one token per 2s
		{0, "b", true, 0},                // sources are independent
		{time.Second, "a", false, time.Second},
		{time.Second, "a", true, 0},
		{0, "a", false, 2 * time.Second},
	}
	for i, tt := range tests {
		now = now.Add(tt.advance)
		ok, wait := tbl.allowPair(tt.src, now)
		if ok != tt.ok || wait.Round(time.Millisecond) != tt.wait {
			t.Fatalf("step %d: allowPair(%s) = %v, %s; want %v, %s", i, tt.src, ok, wait, tt.ok, tt.wait)
		}
	}
}

func TestSourceKey(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 4000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), Port: 4000}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 5000}, "2001:db8:1:2::/64"},
		{&net.UnixAddr{Name: "/run/x", Net: "unix"}, "/run/x"},
	}
	for _, tt := range tests {
		if got := sourceKey(tt.addr); got != tt.want {
			t.Errorf("sourceKey(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
