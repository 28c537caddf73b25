package pemutil

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/fuzzseed"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seed corpus")

// FuzzValidateCABundle checks that arbitrary peer input never panics, that accepted bundles
// respect the limits and hold only CAs, and that errors stay short and never echo PEM bodies.
func FuzzValidateCABundle(f *testing.F) {
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, bundle []byte) {
		certs, err := ValidateCABundle(bundle, fixedNow, Limits{MaxBytes: 64 << 10, MaxCertificates: 8})
		if err != nil {
			msg := err.Error()
			if len(msg) > 512 {
				t.Fatalf("error is %d bytes long", len(msg))
			}
			if strings.Contains(msg, "-----") {
				t.Fatalf("error echoes PEM input: %q", msg)
			}
			return
		}
		if len(certs) == 0 || len(certs) > 8 {
			t.Fatalf("accepted %d certificates", len(certs))
		}
		for _, c := range certs {
			if !c.IsCA || !c.BasicConstraintsValid || fixedNow.After(c.NotAfter) {
				t.Fatalf("accepted an invalid CA %s", Describe(c))
			}
		}
		if _, err := ValidateCABundle(EncodeBundle(certs), fixedNow, Limits{}); err != nil {
			t.Fatalf("re-encoded bundle rejected: %v", err)
		}
	})
}

// TestFuzzSeedCorpus keeps the committed seeds in testdata/fuzz; run with -update to rewrite them.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateCABundle")
	if !*update {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("seed corpus missing in %s (run go test -run TestFuzzSeedCorpus -update): %v", dir, err)
		}
		return
	}
	ca, _ := mustCert(t, certOpts{cn: "seed-ca", isCA: true, keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign})
	leaf, _ := mustCert(t, certOpts{cn: "seed-leaf"})
	expired, _ := mustCert(t, certOpts{cn: "seed-expired", isCA: true, notBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), notAfter: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)})
	// A dummy body: a committed real key would trip secret scanners and teaches nothing more.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not a key")})
	seeds := map[string][]byte{
		"valid_ca":     pemOf(ca),
		"two_cas":      pemOf(ca, ca),
		"leaf":         pemOf(ca, leaf),
		"expired":      pemOf(expired),
		"private_key":  append(pemOf(ca), keyPEM...),
		"truncated":    pemOf(ca)[:200],
		"comments":     append([]byte("# comment\n"), pemOf(ca)...),
		"bad_base64":   []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
		"empty_block":  []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		"garbage":      []byte("\x00\xff\x30\x82"),
		"header_only":  []byte("-----BEGIN CERTIFICATE-----"),
		"flipped_byte": flip(pemOf(ca), 120),
	}
	if err := fuzzseed.WriteAll(dir, seeds); err != nil {
		t.Fatal(err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}
