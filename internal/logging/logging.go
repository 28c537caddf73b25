// Package logging builds the agent's one root hclog logger and routes the logs of client-go
// (klog) and gRPC into it, so every line has the same format and level.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Options configure the root logger.
type Options struct {
	// Level is trace, debug, info, warn or error.
	Level string
	// Format is text or json.
	Format string
	// Output defaults to stderr.
	Output io.Writer
}

// New builds the root logger, or an error naming the bad option.
func New(name string, o Options) (hclog.Logger, error) {
	level := hclog.LevelFromString(o.Level)
	if o.Level == "" {
		level = hclog.Info
	} else if level == hclog.NoLevel {
		return nil, fmt.Errorf("invalid log level %q: want trace, debug, info, warn or error", o.Level)
	}
	var json bool
	switch strings.ToLower(o.Format) {
	case "", "text":
	case "json":
		json = true
	default:
		return nil, fmt.Errorf("invalid log format %q: want text or json", o.Format)
	}
	out := o.Output
	if out == nil {
		out = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		JSONFormat: json,
		Output:     out,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	}), nil
}
