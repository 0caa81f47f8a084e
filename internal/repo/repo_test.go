package repo

import (
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return dir
}

// goDirs yields every directory holding non-test Go files, skipping testdata.
func goFiles(t *testing.T, root string) map[string][]string {
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			out[filepath.Dir(p)] = append(out[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryPackageHasADocComment(t *testing.T) {
	root := moduleRoot(t)
	for dir, files := range goFiles(t, root) {
		fset := token.NewFileSet()
		documented, hasCode := false, false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			hasCode = true
			if af.Doc != nil && strings.HasPrefix(strings.TrimSpace(af.Doc.Text()), pkgPrefix(af)) {
				documented = true
			}
		}
		if hasCode && !documented {
			rel, _ := filepath.Rel(root, dir)
			t.Errorf("package in %s has no doc comment", rel)
		}
	}
}

func pkgPrefix(af *ast.File) string {
	if af.Name.Name == "main" {
		return "Command "
	}
	return "Package " + af.Name.Name
}

func TestGofmt(t *testing.T) {
	root := moduleRoot(t)
	for _, files := range goFiles(t, root) {
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := format.Source(src)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if string(got) != string(src) {
				rel, _ := filepath.Rel(root, f)
				t.Errorf("%s is not gofmt-clean", rel)
			}
		}
	}
}

func TestBinaryDoesNotLinkTesting(t *testing.T) {
	root := moduleRoot(t)
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", filepath.Join(root, "cmd", "hearth")).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "testing" {
			t.Fatal("cmd/hearth depends on package testing")
		}
	}
}
