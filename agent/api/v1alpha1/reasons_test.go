package v1alpha1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryReasonSetAndTested: every condition reason this package declares is set by some code
// path outside it and named by some test (issue 15 §2), so that a reason a user reads in the API
// is one the agent can report, and none is left declared but dead.
func TestEveryReasonSetAndTested(t *testing.T) {
	reasons := declaredReasons(t)
	if len(reasons) < 20 {
		t.Fatalf("found %d reasons, the parse is wrong", len(reasons))
	}
	set, tested := map[string]bool{}, map[string]bool{}
	ref := regexp.MustCompile(`\bv1alpha1\.(Reason[A-Za-z0-9]+)\b`)
	root := filepath.Join("..", "..", "..")
	for _, dir := range []string{"agent", "internal", "test"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.Contains(path, filepath.Join("agent", "api")) {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			into := set
			if strings.HasSuffix(path, "_test.go") {
				into = tested
			}
			for _, m := range ref.FindAllSubmatch(src, -1) {
				into[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range reasons {
		if !set[r] {
			t.Errorf("%s is declared but no code outside agent/api sets it: set it where it applies, or remove it", r)
		}
		if !tested[r] {
			t.Errorf("%s is set but no test names it", r)
		}
	}
}

// declaredReasons lists the Reason* constants of this package's non-test files.
func declaredReasons(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Reason") {
						out = append(out, n.Name)
					}
				}
			}
		}
	}
	return out
}
