package pod

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/test/esim"
)

// HTTPFault decides, for each REST request, whether the pod misbehaves: it waits delay first (a
// client with a shorter timeout sees a timeout), then answers status with an Elasticsearch error
// body when status is not 0, else serves the request normally.
type HTTPFault func(r *http.Request) (status int, delay time.Duration)

// httpServing is the pod's REST server, which a test can make fail or close for a while.
type httpServing struct {
	mu       sync.Mutex
	srv      *http.Server
	addr     string
	closed   bool
	fault    HTTPFault
	requests atomic.Int64
	faulted  atomic.Int64
}

// SetHTTPFault installs f for every later REST request; nil serves normally again.
func (p *Pod) SetHTTPFault(f HTTPFault) {
	p.http.mu.Lock()
	p.http.fault = f
	p.http.mu.Unlock()
}

// HTTPRequests returns how many REST requests reached the pod, and how many of them a fault
// answered or delayed.
func (p *Pod) HTTPRequests() (total, faulted int64) {
	return p.http.requests.Load(), p.http.faulted.Load()
}

// CloseHTTP stops the REST listener and drops its open connections, as a pod that went away:
// clients get "connection refused". The remote cluster server keeps running.
func (p *Pod) CloseHTTP() error {
	p.http.mu.Lock()
	defer p.http.mu.Unlock()
	if p.http.closed || p.http.srv == nil {
		return nil
	}
	p.http.closed = true
	return p.http.srv.Close()
}

// ReopenHTTP serves REST again on the same address after CloseHTTP.
func (p *Pod) ReopenHTTP() error {
	p.http.mu.Lock()
	defer p.http.mu.Unlock()
	if !p.http.closed {
		return nil
	}
	host, port, err := net.SplitHostPort(p.http.addr)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(port)
	ln, err := listenOn(host, n)
	if err != nil {
		return err
	}
	p.http.closed = false
	p.httpLn = ln
	p.serveHTTPLocked(ln)
	return nil
}

// startHTTP serves REST on ln until ctx ends.
func (p *Pod) startHTTP(ctx context.Context, ln net.Listener) {
	p.http.mu.Lock()
	p.http.addr = ln.Addr().String()
	p.serveHTTPLocked(ln)
	p.http.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-ctx.Done()
		p.http.mu.Lock()
		srv := p.http.srv
		p.http.closed = true
		p.http.mu.Unlock()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
}

func (p *Pod) serveHTTPLocked(ln net.Listener) {
	srv := &http.Server{
		Handler:           p.faulty(p.node.Handler()),
		TLSConfig:         &tls.Config{GetCertificate: p.httpCertificate, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          p.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	p.http.srv = srv
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			p.log.Debug("http server stopped", "error", err)
		}
	}()
}

// faulty applies the installed HTTPFault before next.
func (p *Pod) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.http.requests.Add(1)
		p.calls.add(r)
		p.http.mu.Lock()
		f := p.http.fault
		p.http.mu.Unlock()
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		status, delay := f(r)
		if status != 0 || delay > 0 {
			p.http.faulted.Add(1)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if status == 0 {
			next.ServeHTTP(w, r)
			return
		}
		e := faultError(status)
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(e.JSON())
	})
}

// faultError is the error Elasticsearch answers with status.
func faultError(status int) *esim.Error {
	switch status {
	case http.StatusTooManyRequests:
		return &esim.Error{Type: "es_rejected_execution_exception", Status: status,
			Reason: "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]"}
	case http.StatusServiceUnavailable:
		return &esim.Error{Type: "master_not_discovered_exception", Status: status, Reason: "no master node"}
	default:
		return &esim.Error{Type: "exception", Status: status, Reason: fmt.Sprintf("simulated failure (HTTP %d)", status)}
	}
}
