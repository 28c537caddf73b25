// Package fakees serves an in-process Elasticsearch (test/esim) to the agent's tests. Only _test.go
// files import it; the agent itself never does.
package fakees

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/test/esim"
)

// User and Password are the user Serve gives node and logs the client in as.
const (
	User     = "elastic"
	Password = "test-password"
)

// Serve serves node over TLS until tb ends and returns a client logged in as User. h, when not
// nil, stands in front of node's handler (to count or fail requests); nil serves node as it is.
func Serve(tb testing.TB, node *esim.Node, h http.Handler) *elastic.Client {
	tb.Helper()
	node.SetUser(User, Password)
	if h == nil {
		h = node.Handler()
	}
	srv := httptest.NewTLSServer(h)
	tb.Cleanup(srv.Close)
	c, err := elastic.NewClient(elastic.ClientConfig{URL: srv.URL, Username: User, Password: elastic.Secret(Password), Transport: srv.Client().Transport})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
