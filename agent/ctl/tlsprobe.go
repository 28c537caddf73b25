package ctl

import (
	"crypto/x509"
	"strings"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
)

// certInfo describes a certificate for diagnosis; never key material.
type certInfo struct {
	Subject          string    `json:"subject"`
	Issuer           string    `json:"issuer"`
	DNSNames         []string  `json:"dnsNames,omitempty"`
	IPAddresses      []string  `json:"ipAddresses,omitempty"`
	NotBefore        time.Time `json:"notBefore"`
	NotAfter         time.Time `json:"notAfter"`
	ExpiresInSeconds int64     `json:"expiresInSeconds"`
	Fingerprint      string    `json:"fingerprint"`
}

func describeCert(c *x509.Certificate, now time.Time) *certInfo {
	ci := &certInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(), DNSNames: c.DNSNames, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		ExpiresInSeconds: seconds(now, c.NotAfter), Fingerprint: pemutil.Fingerprint(c)}
	for _, ip := range c.IPAddresses {
		ci.IPAddresses = append(ci.IPAddresses, ip.String())
	}
	return ci
}

// sans renders a certificate's subject alternative names.
func (c *certInfo) sans() string {
	var parts []string
	for _, d := range c.DNSNames {
		parts = append(parts, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		parts = append(parts, "IP:"+ip)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
