package kube

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/rest"
)

// WaitForAPIServer returns a copy of cfg for the informers: its GET requests (the reflectors'
// lists and watches) wait out an API server that cannot be dialed, retrying every at most max,
// instead of failing. client-go's reflectors back off up to 30s (60s with jitter) after each
// failed list; after an outage of a minute that leaves the cache stale for up to a minute more
// while everything else already works. A request that could not even be dialed never reached
// the server, so sending it again is safe. Only GETs wait; writes fail fast so reconciles report
// the outage.
func WaitForAPIServer(cfg *rest.Config, max time.Duration, log hclog.Logger) *rest.Config {
	c := rest.CopyConfig(cfg)
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &waitingTransport{next: rt, max: max, log: log}
	})
	return c
}

type waitingTransport struct {
	next http.RoundTripper
	max  time.Duration
	log  hclog.Logger
}

func (t *waitingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.Body != nil && req.Body != http.NoBody {
		return t.next.RoundTrip(req)
	}
	delay := 100 * time.Millisecond
	var since time.Time
	var prev error
	for {
		resp, err := t.next.RoundTrip(req)
		if err != nil && prev != nil && req.Context().Err() != nil {
			// The request's context cut this dial short: the previous error says why the API
			// server is unreachable, this one only that time ran out.
			return nil, prev
		}
		prev = err
		if err == nil || !unreachable(err) {
			if !since.IsZero() && err == nil {
				t.log.Info("kubernetes API reachable again", "waited", time.Since(since).Round(time.Millisecond))
			}
			return resp, err
		}
		if since.IsZero() {
			since = time.Now()
			t.log.Warn("kubernetes API unreachable, informers wait for it", "error", err)
		}
		timer := time.NewTimer(delay)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, err
		case <-timer.C:
		}
		delay = min(2*delay, t.max)
	}
}

// unreachable reports whether err happened while dialing, before anything was sent.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
