// Package agent_test holds checks over the agent's source as a whole.
package agent_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the longest a hand-written function in agent/ may be (issue 14): past it, a
// function does several things that want names of their own.
const maxFuncLines = 100

// longFuncs are the functions allowed past maxFuncLines for now, by "dir: name", until their
// split lands (none today). Remove an entry with its split.
var longFuncs = map[string]bool{}

// TestNoLongFunctions fails when a hand-written function in agent/ (not generated, not a test)
// is longer than maxFuncLines, counting from its signature to its closing brace.
func TestNoLongFunctions(t *testing.T) {
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) || generated(path) {
			return nil
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			name := filepath.Dir(path) + ": " + fn.Name.Name
			if fn.Recv != nil && len(fn.Recv.List) > 0 {
				name = filepath.Dir(path) + ": " + receiver(fn.Recv.List[0].Type) + "." + fn.Name.Name
			}
			if lines <= maxFuncLines {
				continue
			}
			if longFuncs[name] {
				seen[name] = true
				continue
			}
			t.Errorf("%s:%d: %s is %d lines, more than %d: split it into named steps",
				path, fset.Position(fn.Pos()).Line, name, lines, maxFuncLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range longFuncs {
		if !seen[name] {
			t.Logf("%s is no longer over %d lines: remove it from longFuncs", name, maxFuncLines)
		}
	}
}

// generated tells the generated files that carry no "Code generated" line by their names.
func generated(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "zz_generated") || strings.HasSuffix(base, ".pb.go")
}

func receiver(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return receiver(t.X)
	case *ast.IndexExpr:
		return receiver(t.X)
	case *ast.IndexListExpr:
		return receiver(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

// servedGroups are the typed API groups kube.Clientset serves; the agent calls no other.
var servedGroups = map[string]bool{"CoreV1": true, "CoordinationV1": true}

// TestTypedClientGroups fails when a package of the agent process (all of agent/ but ctl, whose
// agentctl builds client-go's full clientset) calls a typed API group that kube.Clientset does
// not serve: the call would panic at run time, not fail to build.
func TestTypedClientGroups(t *testing.T) {
	group := func(name string) bool {
		// CoreV1, AppsV1, CoordinationV1, RbacV1, BatchV1beta1, ...: an API group accessor.
		i := strings.LastIndex(name, "V")
		return i > 0 && i+1 < len(name) && name[i+1] >= '1' && name[i+1] <= '9' && name[0] >= 'A' && name[0] <= 'Z' && !strings.ContainsAny(name[:i], "0123456789")
	}
	fset := token.NewFileSet()
	calls := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasPrefix(path, "ctl/") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !group(sel.Sel.Name) {
				return true
			}
			calls++
			if !servedGroups[sel.Sel.Name] {
				t.Errorf("%s: %s() is not served by kube.Clientset (add the group there, or use the dynamic client)", fset.Position(call.Pos()), sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("no typed API group call found: the check reads nothing")
	}
}
