package exchange

import (
	"go/parser"
	"go/token"
	"testing"
)

func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || len(f.Doc.Text()) < 100 {
		t.Fatal("package exchange has no doc comment")
	}
}
