package classify

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// declaredClasses parses the package's source (not the table at run time,
// which can only show rows) and returns its Class constants, name to value,
// and the keys of every map[Class]entry literal, in order.
func declaredClasses(t *testing.T) (consts map[string]string, keys []ast.Expr, fset *token.FileSet) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset = token.NewFileSet()
	consts = map[string]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GenDecl:
				if n.Tok != token.CONST {
					return true
				}
				for _, s := range n.Specs {
					vs := s.(*ast.ValueSpec)
					if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Class" {
						continue
					}
					for i, nm := range vs.Names {
						var lit *ast.BasicLit
						if i < len(vs.Values) {
							lit, _ = vs.Values[i].(*ast.BasicLit)
						}
						if lit == nil || lit.Kind != token.STRING {
							t.Errorf("%s: class %s is not a string literal", fset.Position(nm.Pos()), nm.Name)
							continue
						}
						v, _ := strconv.Unquote(lit.Value)
						consts[nm.Name] = v
					}
				}
			case *ast.CompositeLit:
				if isRowMap(n.Type) {
					for _, e := range n.Elts {
						keys = append(keys, e.(*ast.KeyValueExpr).Key)
					}
				}
			}
			return true
		})
	}
	return consts, keys, fset
}

// isRowMap reports whether x is the type map[Class]entry.
func isRowMap(x ast.Expr) bool {
	m, ok := x.(*ast.MapType)
	if !ok {
		return false
	}
	k, ok1 := m.Key.(*ast.Ident)
	v, ok2 := m.Value.(*ast.Ident)
	return ok1 && ok2 && k.Name == "Class" && v.Name == "entry"
}

// Every declared class has exactly one row and every row is keyed by a
// declared class, so no failure goes out without a cause and a next command
// and no row is unreachable.
func TestEveryClassHasARow(t *testing.T) {
	consts, keys, fset := declaredClasses(t)
	if len(consts) < 40 || len(keys) < 40 {
		t.Fatalf("found %d classes and %d rows; the scan is broken", len(consts), len(keys))
	}
	rowed := map[string]bool{}
	for _, k := range keys {
		id, ok := k.(*ast.Ident)
		if !ok {
			t.Errorf("%s: a row is keyed by %s, not by a class constant", fset.Position(k.Pos()), types.ExprString(k))
			continue
		}
		if _, ok := consts[id.Name]; !ok {
			t.Errorf("%s: row key %s is not a declared class", fset.Position(k.Pos()), id.Name)
		}
		rowed[id.Name] = true
	}
	for name, v := range consts {
		if !rowed[name] {
			t.Errorf("class %s (%q) has no row in the table", name, v)
			continue
		}
		e := table[Class(v)]
		if e.cause == "" || (e.local == "" && Class(v) != Unknown) {
			t.Errorf("class %s (%q) lacks a cause or a next command", name, v)
		}
	}
	if len(table) != len(consts) {
		t.Errorf("the table has %d rows for %d declared classes", len(table), len(consts))
	}
}

// A class written as a string literal compiles (an untyped constant becomes
// a Class), so a typo would go out with no row: the verifier's code names
// classes by their constants only.
func TestNoClassLiterals(t *testing.T) {
	consts, _, _ := declaredClasses(t)
	values := map[string]string{}
	for name, v := range consts {
		values[v] = name
	}
	fset := token.NewFileSet()
	scanned := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || path == filepath.Join("..", "classify", "table.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		scanned++
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && values[v] != "" {
					t.Errorf("%s: %s names class %s by its string; use the constant", fset.Position(lit.Pos()), lit.Value, values[v])
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 20 {
		t.Fatalf("scanned only %d files; the walk is broken", scanned)
	}
}

func TestScrapeClass(t *testing.T) {
	cases := map[string]Class{
		`Get "http://x/metrics": dial tcp 127.0.0.1:9: connect: connection refused`: PrometheusTargetRefused,
		`Get "http://x/metrics": context deadline exceeded`:                         PrometheusTargetTimeout,
		`server returned HTTP status 404 Not Found`:                                 PrometheusTargetHTTP,
	}
	for in, want := range cases {
		if got := ScrapeClass(in); got != want {
			t.Errorf("%q -> %s, want %s", in, got, want)
		}
	}
}
