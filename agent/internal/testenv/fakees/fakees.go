// Package fakees serves an in-process Elasticsearch (test/esim) to the agent's tests. Only _test.go
// files import it; the agent itself never does.
package fakees

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
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

// Node is an esim node Start serves: the client logged in to it, the failures it answers with
// instead of serving, and the requests it served.
type Node struct {
	*esim.Node
	Client *elastic.Client
	Faults *esim.Faults
	// Requests counts the requests the node served (or failed by Faults), by "METHOD path".
	Requests *testenv.Counts
}

// Start makes a node of cfg and serves it behind its Faults until tb ends, counting requests.
func Start(tb testing.TB, cfg esim.Config) *Node {
	tb.Helper()
	node, err := esim.NewNode(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	n := &Node{Node: node, Faults: &esim.Faults{}, Requests: &testenv.Counts{}}
	handler := n.Faults.Wrap(node.Handler())
	n.Client = Serve(tb, node, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Requests.Add(r.Method + " " + r.URL.Path)
		handler.ServeHTTP(w, r)
	}))
	return n
}
