// Package command builds the agent's command line.
package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ecklink/ecklink/agent/app"
	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/internal/logging"
	"github.com/ecklink/ecklink/internal/version"
)

// Exit codes of the agent.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitConfig = 2
)

// NewAgentCommand returns the agent's root command.
func NewAgentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "ecklink agent: keeps Elasticsearch remote clusters connected across ECK environments",
		Long: `The ecklink agent runs in each ECK environment. Paired agents hold one mutually
authenticated gRPC stream and exchange transport CA bundles and cross-cluster API keys, so that
each side applies its own half locally: the remote side creates and rotates API keys in its own
Elasticsearch, the local side writes Secrets and ConfigMaps in its own cluster and configures its
own Elasticsearch remote cluster settings.

Exit codes: 0 stopped cleanly, 1 failed while running, 2 invalid configuration.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
	}
	flags := config.BindFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Resolve()
		if err != nil {
			return &exitError{code: ExitConfig, err: err}
		}
		log, err := logging.New("agent", logging.Options{Level: cfg.LogLevel, Format: cfg.LogFormat, Output: cmd.ErrOrStderr()})
		if err != nil {
			return &exitError{code: ExitConfig, err: err}
		}
		logging.Redirect(log)
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		a, err := app.New(ctx, cfg, log, version.Version)
		if err != nil {
			return &exitError{code: ExitConfig, err: err}
		}
		if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("agent stopped", "error", err)
			return &exitError{code: ExitFailed, err: err}
		}
		log.Info("agent stopped")
		return nil
	}
	return cmd
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Execute runs cmd and returns the process exit code, printing the error if any.
func Execute(cmd *cobra.Command) int {
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return ExitConfig // flag parsing and usage errors
	}
	return ExitOK
}
