package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// validOutput checks --output: table, wide, name, json, yaml or jsonpath=TEMPLATE.
func validOutput(o string) error {
	switch {
	case o == "table", o == "wide", o == "name", o == "json", o == "yaml":
		return nil
	case strings.HasPrefix(o, "jsonpath="):
		if _, err := parseJSONPath(strings.TrimPrefix(o, "jsonpath=")); err != nil {
			return fmt.Errorf("--output %q: %w", o, err)
		}
		return nil
	}
	return fmt.Errorf("--output %q: want table, wide, name, json, yaml or jsonpath=TEMPLATE", o)
}

func parseJSONPath(tmpl string) (*jsonpath.JSONPath, error) {
	jp := jsonpath.New("output").AllowMissingKeys(true)
	if err := jp.Parse(tmpl); err != nil {
		return nil, fmt.Errorf("invalid jsonpath template: %w", err)
	}
	return jp, nil
}

// namer is output that lists Kubernetes objects, for -o name (kind.group/name, as kubectl).
type namer interface{ names() []string }

// wide reports -o wide: tables add columns.
func (g *globals) wide() bool { return g.output == "wide" }

// print writes v as JSON, YAML, a jsonpath template's result or object names, or calls table
// for the table formats.
func (g *globals) print(v any, table func(w io.Writer) error) error {
	w := g.opts.Out
	switch {
	case g.output == "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("failed to write JSON: %w", err)
		}
		return nil
	case g.output == "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("failed to write YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	case strings.HasPrefix(g.output, "jsonpath="):
		return printJSONPath(w, strings.TrimPrefix(g.output, "jsonpath="), v)
	case g.output == "name":
		n, ok := v.(namer)
		if !ok {
			return usageErr(errors.New("--output name: this command lists no objects (use it with status)"))
		}
		for _, name := range n.names() {
			fmt.Fprintln(w, name)
		}
		return nil
	default:
		return table(w)
	}
}

// printJSONPath evaluates the template on v's JSON form, so the paths are those of -o json.
func printJSONPath(w io.Writer, tmpl string, v any) error {
	jp, err := parseJSONPath(tmpl)
	if err != nil {
		return usageErr(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("failed to encode output: %w", err)
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return fmt.Errorf("failed to decode output: %w", err)
	}
	if err := jp.Execute(w, data); err != nil {
		return fmt.Errorf("failed to apply the jsonpath template: %w", err)
	}
	return nil
}

// printObjects writes Kubernetes objects for --dry-run: YAML documents, or a JSON list.
func (g *globals) printObjects(objs ...any) error {
	if g.output == "json" {
		return g.print(map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}, nil)
	}
	for i, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			return fmt.Errorf("failed to write YAML: %w", err)
		}
		if i > 0 {
			fmt.Fprintln(g.opts.Out, "---")
		}
		if _, err := g.opts.Out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// progress writes a progress line to stderr.
func (g *globals) progress(format string, args ...any) {
	fmt.Fprintf(g.opts.Err, format+"\n", args...)
}

// newTable returns a tab writer for aligned columns.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// row writes tab-separated cells.
func row(w io.Writer, cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")) }

// ago renders how long ago t was ("5s ago"), or "-" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if t.After(now) {
		return "in " + duration.HumanDuration(t.Sub(now))
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

// until renders a countdown ("in 364d"), or "expired 2h ago", or "never" for the zero time.
func until(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "never"
	case !t.After(now):
		return "expired " + duration.HumanDuration(now.Sub(t)) + " ago"
	default:
		return "in " + duration.HumanDuration(t.Sub(now))
	}
}

// short abbreviates a hex fingerprint to 16 digits for tables.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

// dash shows "-" for empty cells.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// seconds returns a pointer-free duration in whole seconds for JSON, negative once passed.
func seconds(now, t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return int64(t.Sub(now) / time.Second)
}
