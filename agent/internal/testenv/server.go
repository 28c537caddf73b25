package testenv

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
)

// TLS is the certificate and its key as a tls.Certificate, to serve with.
func (c Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: c.Key}
}

// ServeConns accepts connections on ln, each handed to handle in a goroutine of its own, until
// ln closes; it closes with tb.
func ServeConns(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// HandshakeServer listens on a loopback port with cfg and, for each connection it accepts
// (counted in accepted unless nil), completes the TLS handshake and hangs up. It returns the
// address; the listener closes with tb.
func HandshakeServer(tb testing.TB, cfg *tls.Config, accepted *atomic.Int64) string {
	tb.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ServeConns(tb, ln, func(c net.Conn) {
		if accepted != nil {
			accepted.Add(1)
		}
		_ = c.(*tls.Conn).Handshake()
		_ = c.Close()
	})
	return ln.Addr().String()
}
