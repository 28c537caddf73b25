// Package ctl is agentctl, the command line of ecklink: it pairs and unpairs environments,
// shows the state of peers and links, and diagnoses a remote cluster connection end to end. It
// talks only to the Kubernetes APIs of the environments (kubeconfig contexts, as kubectl does)
// and, for diagnosis, to the addresses Elasticsearch uses; never to an agent directly.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes of agentctl.
const (
	ExitOK = 0
	// ExitFailed: the command failed (an API error, a refused pairing, ...).
	ExitFailed = 1
	// ExitUsage: bad flags or arguments.
	ExitUsage = 2
	// ExitNotReady: --wait gave up after --timeout, or the state waited for was not reached.
	ExitNotReady = 3
	// ExitCheckFailed: doctor found a failing check.
	ExitCheckFailed = 4
)

const exitCodesHelp = `Exit codes:
  0  success
  1  failure (API error, refused pairing, ...)
  2  usage error (flags, arguments)
  3  not ready: --wait timed out, or the state waited for was not reached
  4  doctor found a failing check`

// Options are agentctl's streams and clock; tests replace them.
type Options struct {
	Out io.Writer
	Err io.Writer
	// In is read by `pair join -` (default stdin).
	In io.Reader
	// Now is the clock of ages and countdowns (default time.Now).
	Now func() time.Time

	// connect replaces the Kubernetes clients (tests).
	connect func(kubeconfig, context, namespace string) (*env, error)
}

// globals are the flags every command shares.
type globals struct {
	opts       Options
	kubeconfig string
	context    string
	namespace  string
	output     string
	wait       bool
	timeout    time.Duration
	// connect builds an environment's clients; tests replace it with fakes.
	connect func(kubeconfig, context, namespace string) (*env, error)
}

// NewCommand returns agentctl's root command.
func NewCommand(o Options) *cobra.Command {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Err == nil {
		o.Err = os.Stderr
	}
	if o.In == nil {
		o.In = os.Stdin
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &globals{opts: o, connect: o.connect}
	root := &cobra.Command{
		Use:   "agentctl",
		Short: "Pair ecklink environments, show their state and diagnose remote cluster links",
		Long: `agentctl manages ecklink, which keeps Elasticsearch remote clusters connected across ECK
environments. It reads and writes through the Kubernetes API of each environment, selected as
with kubectl: --kubeconfig (else $KUBECONFIG, else ~/.kube/config) and --context.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(o.Out)
	root.SetErr(o.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	pf.StringVar(&g.context, "context", "", "kubeconfig context of this environment (default: the current context)")
	pf.StringVarP(&g.namespace, "namespace", "n", "ecklink", "namespace of the ecklink agent")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	pf.BoolVar(&g.wait, "wait", false, "wait until the state is reached, up to --timeout, with progress on stderr (pair, pair join, unpair and rotate identity wait unless --wait=false)")
	pf.DurationVar(&g.timeout, "timeout", 2*time.Minute, "how long --wait waits")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		switch g.output {
		case "table", "json", "yaml":
		default:
			return usageErr(fmt.Errorf("--output %q: want table, json or yaml", g.output))
		}
		if g.timeout <= 0 {
			return usageErr(fmt.Errorf("--timeout must be positive"))
		}
		return nil
	}
	root.AddCommand(newPairCommand(g), newUnpairCommand(g), newRotateCommand(g), newStatusCommand(g), newDoctorCommand(g), newVersionCommand(g))
	documentExitCodes(root.Commands())
	return root
}

// documentExitCodes ends every command's help with the exit codes.
func documentExitCodes(cmds []*cobra.Command) {
	for _, c := range cmds {
		c.Long = strings.TrimRight(c.Short+"\n\n"+c.Long, "\n") + "\n\n" + exitCodesHelp
		documentExitCodes(c.Commands())
	}
}

// exitError carries an exit code with an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error    { return &exitError{code: ExitUsage, err: err} }
func notReadyErr(err error) error { return &exitError{code: ExitNotReady, err: err} }

// errChecksFailed ends doctor when a check failed; the report says which.
var errChecksFailed = &exitError{code: ExitCheckFailed, err: errors.New("a check failed")}

// Execute runs cmd and returns the exit code, printing the error if any.
func Execute(ctx context.Context, cmd *cobra.Command) int {
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee != errChecksFailed {
			fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
		}
		return ee.code
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
	if isUsage(err) {
		return ExitUsage
	}
	return ExitFailed
}

// isUsage tells cobra's unknown-command and required-flag errors, which it returns unwrapped; flag and argument
// errors are wrapped where they arise (SetFlagErrorFunc, args).
func isUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag(s)")
}

// args wraps a cobra argument validator so that its errors exit with ExitUsage.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageErr(err)
		}
		return nil
	}
}

// Main runs agentctl with args until a signal or the end, and returns the exit code.
func Main(args []string, o Options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := NewCommand(o)
	cmd.SetArgs(args)
	return Execute(ctx, cmd)
}
