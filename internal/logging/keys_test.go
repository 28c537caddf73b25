package logging

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestLogKeysFromTheList: every literal key passed to an hclog call (Trace, Debug, Info, Warn,
// Error, With) in agent/ and internal/ is in Keys, and every key in Keys is snake_case and used.
func TestLogKeysFromTheList(t *testing.T) {
	used := map[string][]string{}
	for _, root := range []string{"../../agent", ".."} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, ".pb.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				for _, k := range logKeys(n) {
					used[k] = append(used[k], fset.Position(n.Pos()).String())
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var unknown []string
	for k, at := range used {
		if _, ok := Keys[k]; !ok {
			unknown = append(unknown, k+" ("+at[0]+")")
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		t.Errorf("log key %s is not in logging.Keys: add it with its meaning, or use a listed key", k)
	}
	for k := range Keys {
		if !snakeCase.MatchString(k) {
			t.Errorf("log key %q is not snake_case", k)
		}
		if len(used[k]) == 0 {
			t.Errorf("log key %q is listed but no code uses it", k)
		}
	}
	if len(used) < 20 {
		t.Fatalf("found only %d keys: the scan is not reading the agent's code", len(used))
	}
}

// logKeys returns the literal keys of an hclog call: the odd arguments after the message of
// Trace/Debug/Info/Warn/Error (when the message is a literal), every other argument of With.
func logKeys(n ast.Node) []string {
	c, ok := n.(*ast.CallExpr)
	if !ok {
		return nil
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return nil
	}
	start := 0
	switch sel.Sel.Name {
	case "Trace", "Debug", "Info", "Warn", "Error":
		if len(c.Args) == 0 {
			return nil
		}
		if lit, ok := c.Args[0].(*ast.BasicLit); !ok || lit.Kind != token.STRING {
			return nil
		}
		start = 1
	case "With":
	default:
		return nil
	}
	var out []string
	for i := start; i < len(c.Args); i += 2 {
		if lit, ok := c.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			k, _ := strconv.Unquote(lit.Value)
			out = append(out, k)
		}
	}
	return out
}
