// Package failpoint lets crash-consistency tests kill the agent at a named step, like etcd's
// gofail: the product calls Inject("importer/after-secret-write") at the step, and the test starts
// the agent with the environment variable
//
//	ECKLINK_FAILPOINTS=importer/after-secret-write
//
// The process then writes one line to stderr naming the failpoint and sends itself SIGKILL there,
// as kill -9 would: no deferred function runs, nothing is flushed. A name may carry "=N" to fire on
// the Nth time the step is reached instead of the first (e.g. "exporter/after-key-create=2" lets
// the first key through and kills the process after the second, a rotation). Several failpoints
// are separated by commas.
//
// The variable is read once, at start. When it is unset, Inject is a load and a nil check: the
// failpoints cost nothing in production. Names in use are listed in Names; keep them in step with
// the calls.
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvVar names the failpoints to arm.
const EnvVar = "ECKLINK_FAILPOINTS"

// Names of the failpoints in the product, in the order a link is applied.
const (
	// ImporterAfterConfigMapWrite: the remote CA ConfigMap was written, nothing else yet.
	ImporterAfterConfigMapWrite = "importer/after-configmap-write"
	// ImporterAfterSecretWrite: the credentials Secret was written.
	ImporterAfterSecretWrite = "importer/after-secret-write"
	// ImporterAfterWiring: the Elasticsearch resource was wired (its spec changed).
	ImporterAfterWiring = "importer/after-elasticsearch-wired"
	// ImporterBeforeSettingsPut: an alias was recorded as managed, its settings not yet PUT.
	ImporterBeforeSettingsPut = "importer/before-settings-put"
	// ExporterAfterKeyCreate: an API key was created in Elasticsearch and not yet sent to the peer.
	ExporterAfterKeyCreate = "exporter/after-key-create"
)

// Names lists every failpoint of the product.
var Names = []string{ImporterAfterConfigMapWrite, ImporterAfterSecretWrite, ImporterAfterWiring, ImporterBeforeSettingsPut, ExporterAfterKeyCreate}

// armed maps a failpoint name to the hit that fires it; nil when EnvVar is unset.
var armed = parse(os.Getenv(EnvVar))

var (
	mu   sync.Mutex
	hits = map[string]int{}
)

// Inject kills the process if failpoint name is armed and this is the hit it waits for.
func Inject(name string) {
	if armed == nil {
		return
	}
	inject(name)
}

func inject(name string) {
	at, ok := armed[name]
	if !ok {
		return
	}
	mu.Lock()
	hits[name]++
	n := hits[name]
	mu.Unlock()
	if n != at {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: hit %d, killing the process (%s)\n", name, n, EnvVar)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way; nothing after the failpoint may run
}

// parse reads "name[=N],..."; malformed counts arm the first hit.
func parse(v string) map[string]int {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	out := map[string]int{}
	for _, f := range strings.Split(v, ",") {
		name, count, _ := strings.Cut(strings.TrimSpace(f), "=")
		if name == "" {
			continue
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			n = 1
		}
		out[name] = n
	}
	return out
}
