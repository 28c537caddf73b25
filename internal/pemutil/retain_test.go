package pemutil

import (
	"crypto/x509"
	"fmt"
	"testing"
	"time"
)

// TestRetain: the one CA-retention policy, as both the consumer's CA ConfigMap and the
// transport trust apply it.
func TestRetain(t *testing.T) {
	ca := func(cn string, expires time.Time) *x509.Certificate {
		c, _ := mustCert(t, certOpts{cn: cn, isCA: true, notAfter: expires})
		return c
	}
	year := func(y int) time.Time { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) }
	cur, old1, old2, expired := ca("current", year(2030)), ca("old1", year(2027)), ca("old2", year(2028)), ca("expired", year(2026))
	var many []*x509.Certificate
	for i := range 12 {
		many = append(many, ca(fmt.Sprintf("m%d", i), year(2027+i)))
	}
	names := func(cs []*x509.Certificate) string {
		out := ""
		for _, c := range cs {
			out += c.Subject.CommonName + " "
		}
		return out
	}
	for _, tc := range []struct {
		name              string
		current, previous []*x509.Certificate
		skip              func(string) bool
		want              string
	}{
		{name: "current first, then previous newest first, expired gone", current: []*x509.Certificate{cur}, previous: []*x509.Certificate{old1, expired, old2}, want: "current old2 old1 "},
		{name: "duplicates once", current: []*x509.Certificate{cur, cur}, previous: []*x509.Certificate{cur, old1}, want: "current old1 "},
		{name: "skipped fingerprints left out", current: []*x509.Certificate{cur}, previous: []*x509.Certificate{old1}, skip: func(fp string) bool { return fp == Fingerprint(cur) }, want: "old1 "},
		{name: "at most MaxRetainedCAs, the newest kept", current: []*x509.Certificate{cur}, previous: many,
			want: "current m11 m10 m9 m8 m7 m6 m5 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(Retain(tc.current, tc.previous, fixedNow, tc.skip)); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
}
