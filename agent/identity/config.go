package identity

import (
	"cmp"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/internal/backoff"
)

// Defaults for Config.
const (
	DefaultCAValidity   = 8760 * time.Hour
	DefaultLeafValidity = 24 * time.Hour
	DefaultRotateAt     = 2.0 / 3.0
	DefaultOverlap      = 7 * 24 * time.Hour
	DefaultGatePoll     = 30 * time.Second
	DefaultRequestPoll  = time.Second
	DefaultRetireGrace  = 2 * time.Minute
)

// Names of the Kubernetes objects the identity owns, and their keys.
const (
	SecretName    = "ecklink-agent-ca"
	ConfigMapName = "ecklink-agent-identity"

	KeyCACert       = "ca.crt"
	KeyCAKey        = "ca.key"
	KeyBundle       = "bundle.crt"
	KeyNextCert     = "next.crt"
	KeyNextKey      = "next.key"
	KeyPreviousCert = "previous.crt"

	KeyEnvironment = "environment"
	KeyEndpoints   = "endpoints"
	KeyPin         = "pin"

	// AnnotationNextStaged records when the next CA was staged, so that the overlap survives
	// restarts.
	AnnotationNextStaged = "ecklink.io/next-ca-staged-at"
	// AnnotationPromoted records when the active CA was promoted, which bounds how long the
	// previous CA stays trusted.
	AnnotationPromoted = "ecklink.io/ca-promoted-at"
)

// Config configures an Identity.
type Config struct {
	// Environment is this agent's environment name, a DNS label.
	Environment string
	// Namespace is the agent's namespace, where the Secret and ConfigMap live.
	Namespace string
	// Client reaches the agent's own Kubernetes API.
	Client kubernetes.Interface
	// Endpoints are the host:port addresses peers dial; their hosts go into the leaf's SANs and
	// they are published in the ConfigMap. Empty for an agent that only dials.
	Endpoints []string
	// CAValidity is the lifetime of each agent CA (default 8760h).
	CAValidity time.Duration
	// LeafValidity is the lifetime of each leaf certificate; leaves renew at 2/3 of it
	// (default 24h).
	LeafValidity time.Duration
	// RotateAt is the fraction of the active CA's lifetime after which the next CA is staged
	// (default 2/3).
	RotateAt float64
	// Overlap is how long a staged CA waits before it is promoted, unless the promote gate opens
	// earlier (default 7 days, at most half of what remains of the CA lifetime after RotateAt).
	Overlap time.Duration
	// GatePoll is how often the promote gate is consulted while a CA is staged (default 30s).
	GatePoll time.Duration
	// RequestPoll is how often a requested rotation is advanced while it is pending (default 1s).
	RequestPoll time.Duration
	// RetireGrace bounds how long a requested retirement of the old CA waits for the streams
	// still on leaves of it to move to the new CA (peers of older versions never reconnect on
	// their own); then it retires the old CA anyway and those streams end (default 2m).
	RetireGrace time.Duration
	// Clock drives renewals and certificate validity checks (default the wall clock).
	Clock backoff.Clock
	// Logger receives the identity's logs (default a null logger).
	Logger hclog.Logger
}

func (c *Config) setDefaults() {
	c.CAValidity = cmp.Or(c.CAValidity, DefaultCAValidity)
	c.LeafValidity = cmp.Or(c.LeafValidity, DefaultLeafValidity)
	c.RotateAt = cmp.Or(c.RotateAt, DefaultRotateAt)
	if c.Overlap == 0 {
		c.Overlap = min(DefaultOverlap, c.rotationWindow()/2)
	}
	c.GatePoll = cmp.Or(c.GatePoll, DefaultGatePoll)
	c.RequestPoll = cmp.Or(c.RequestPoll, DefaultRequestPoll)
	c.RetireGrace = cmp.Or(c.RetireGrace, DefaultRetireGrace)
	if c.Clock == nil {
		c.Clock = backoff.RealClock
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// rotationWindow is the part of a CA's life after the next CA is staged.
func (c *Config) rotationWindow() time.Duration {
	return time.Duration(float64(c.CAValidity) * (1 - c.RotateAt))
}

// Validate reports the first invalid field of a defaulted Config, naming it.
func (c *Config) Validate() error {
	if err := ValidateEnvironment(c.Environment); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace: invalid value %q: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if c.Client == nil {
		return fmt.Errorf("client: a Kubernetes client is required")
	}
	for i, ep := range c.Endpoints {
		if err := validateEndpoint(ep); err != nil {
			return fmt.Errorf("endpoints[%d]: invalid value %q: %w", i, ep, err)
		}
	}
	switch {
	case c.CAValidity < 0:
		return fmt.Errorf("caValidity: must be positive, got %s", c.CAValidity)
	case c.LeafValidity < 0 || c.LeafValidity >= c.CAValidity:
		return fmt.Errorf("leafValidity: must be positive and shorter than caValidity (%s), got %s", c.CAValidity, c.LeafValidity)
	case c.RotateAt <= 0 || c.RotateAt >= 1:
		return fmt.Errorf("rotateAt: must be a fraction in (0,1), got %v", c.RotateAt)
	case c.Overlap < 0 || c.Overlap >= c.rotationWindow():
		return fmt.Errorf("overlap: must be positive and shorter than the rest of the CA lifetime after rotateAt (%s), got %s", c.rotationWindow(), c.Overlap)
	case c.GatePoll < 0:
		return fmt.Errorf("gatePoll: must be positive, got %s", c.GatePoll)
	case c.RequestPoll < 0:
		return fmt.Errorf("requestPoll: must be positive, got %s", c.RequestPoll)
	case c.RetireGrace < 0:
		return fmt.Errorf("retireGrace: must be positive, got %s", c.RetireGrace)
	}
	return nil
}

// ValidateEnvironment checks that env is a DNS label (RFC 1123), the form environment names take
// everywhere: in certificates, Peer objects and resource names.
func ValidateEnvironment(env string) error {
	if errs := validation.IsDNS1123Label(env); len(errs) > 0 {
		return fmt.Errorf("environment: invalid value %q: %s", env, strings.Join(errs, "; "))
	}
	return nil
}

func validateEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return fmt.Errorf("host is empty")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be a number in [1,65535]")
	}
	return nil
}
