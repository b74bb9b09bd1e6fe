package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The import rules of docs/architecture.md, checked on the production code
// (test files aside: a test may reach anything it needs to prove a rule).

const module = "github.com/rfd-notify/rfd/"

// sqlHomes are the packages that may run SQL: the data layer, the schema's
// migrations, and the SQL transport and its lag gauge, which work on
// watermill-sql's own tables rather than the service's data.
var sqlHomes = []string{
	"internal/store",
	"migrations",
	"internal/platform/sqlpubsub",
	"internal/platform/lag",
}

// sqlMethods are bun's query builders and database/sql's statement methods:
// a call of one of them is SQL.
var sqlMethods = []string{
	"NewSelect", "NewInsert", "NewUpdate", "NewDelete", "NewMerge", "NewValues", "NewRaw",
	"NewCreateTable", "NewDropTable", "NewCreateIndex", "NewDropIndex", "NewAddColumn", "NewDropColumn",
	"NewTruncateTable", "ExecContext", "QueryContext", "QueryRowContext", "PrepareContext", "Exec", "QueryRow", "Prepare",
}

// transports are the packages that move messages; the API publishes through
// the outbox it is given, never through a transport.
var transports = []string{
	"router",
	"internal/platform/sqlpubsub",
	"internal/platform/kafkapubsub",
	"github.com/ThreeDotsLabs/watermill-sql",
	"github.com/ThreeDotsLabs/watermill-kafka",
	"github.com/IBM/sarama",
	"github.com/twmb/franz-go",
}

// rules say, per package prefix, which packages it must never import.
var rules = []struct {
	from   string
	never  []string
	reason string
}{
	{"api", transports, "the API takes its services as dependencies and publishes through the outbox"},
	{"api", []string{"handlers", "internal/roles", "internal/jobs/cron"}, "the API serves requests; consumers, roles and the job runner are others' work"},
	{"internal/core", []string{"api", "handlers", "router", "internal/roles", "internal/delivery", "internal/jobs", "internal/platform/sqlpubsub", "internal/platform/kafkapubsub"}, "the domain and its use cases know no caller and no transport"},
	{"internal/store", []string{"api", "handlers", "router", "outbox", "internal/roles", "internal/core/notify", "internal/core/events", "internal/delivery", "internal/jobs", "internal/auth"}, "the data layer is the bottom floor: everyone calls it, it calls no one"},
	{"internal/platform", []string{"api", "handlers", "internal/roles", "internal/core", "internal/delivery", "internal/jobs", "internal/store", "internal/auth"}, "platform parts are generic: they know nothing of notifications"},
	{"handlers", []string{"api", "internal/roles", "internal/jobs"}, "a consumer handles its message; it serves no request and runs no job"},
	{"internal/delivery", []string{"api", "handlers", "internal/roles", "internal/jobs"}, "delivery is called by the consumer and the jobs, never the other way"},
	{"internal/jobs", []string{"api", "handlers", "internal/roles"}, "jobs are run by the roles; they serve no request"},
	{"outbox", []string{"api", "handlers", "internal/roles", "internal/core", "internal/delivery", "internal/jobs"}, "the outbox carries any message; it knows none"},
	{"router", []string{"api", "handlers", "internal/roles", "internal/delivery", "internal/jobs", "internal/store"}, "the router is the consumers' plumbing, not their work"},
}

// roleUsers may import internal/roles, the composition root.
var roleUsers = []string{"", "internal/cli", "internal/testkit", "test"}

type goFile struct {
	pkg     string // directory relative to the module root; "" is the root
	path    string
	imports []string // module-relative for this module's packages
	ast     *ast.File
}

func productionFiles(t *testing.T) []goFile {
	t.Helper()
	var files []goFile
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		gf := goFile{pkg: filepath.ToSlash(filepath.Dir(path)), path: filepath.ToSlash(path), ast: f}
		if gf.pkg == "." {
			gf.pkg = ""
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			gf.imports = append(gf.imports, strings.TrimPrefix(p, module))
		}
		files = append(files, gf)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found %d production files; is the test running at the module root?", len(files))
	}
	return files
}

// under reports whether pkg is prefix or inside it ("" is only the root).
func under(pkg, prefix string) bool {
	if prefix == "" {
		return pkg == ""
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func underAny(pkg string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return under(pkg, p) })
}

func TestImportRules(t *testing.T) {
	for _, f := range productionFiles(t) {
		for _, r := range rules {
			if !under(f.pkg, r.from) {
				continue
			}
			for _, imp := range f.imports {
				if underAny(imp, r.never) {
					t.Errorf("%s imports %s: %s", f.path, imp, r.reason)
				}
			}
		}
		if !underAny(f.pkg, roleUsers) && slices.ContainsFunc(f.imports, func(imp string) bool { return under(imp, "internal/roles") }) {
			t.Errorf("%s imports internal/roles: only main, the command line and tests assemble roles", f.path)
		}
	}
}

func TestSQLStaysInTheDataLayer(t *testing.T) {
	for _, f := range productionFiles(t) {
		if underAny(f.pkg, sqlHomes) || under(f.pkg, "internal/testkit") || under(f.pkg, "test") {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if ok && slices.Contains(sqlMethods, sel.Sel.Name) {
				t.Errorf("%s calls %s: SQL belongs in internal/store, behind a named method", f.path, sel.Sel.Name)
			}
			return true
		})
	}
}

// TestLayoutIsDocumented holds the layout blocks of the README (the top
// level) and docs/architecture.md (the top level and internal/'s groups)
// against the tree, both ways.
func TestLayoutIsDocumented(t *testing.T) {
	dirs := func(root string) []string {
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, strings.TrimPrefix(root+"/", "./")+e.Name())
			}
		}
		return out
	}
	top := dirs(".")
	if len(top) > 12 {
		t.Errorf("the top level has %d directories (%v); group them, at most 12", len(top), top)
	}
	for _, doc := range []struct {
		path string
		want []string
	}{
		{"README.md", top},
		{"docs/architecture.md", append(slices.DeleteFunc(slices.Clone(top), func(d string) bool { return d == "internal" }), dirs("internal")...)},
	} {
		listed := layoutBlock(t, doc.path)
		for _, d := range doc.want {
			if !slices.Contains(listed, d) {
				t.Errorf("%s: the layout does not list %s/", doc.path, d)
			}
		}
		for _, d := range listed {
			if !slices.Contains(doc.want, d) {
				t.Errorf("%s: the layout lists %s/, which is not in the tree", doc.path, d)
			}
		}
	}
}

// layoutBlock is the first column of the code block under "## Layout".
func layoutBlock(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatalf("%s has no ## Layout section", path)
	}
	_, rest, _ = strings.Cut(rest, "```\n")
	block, _, _ := strings.Cut(rest, "```")
	var names []string
	for line := range strings.Lines(block) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, strings.TrimSuffix(f[0], "/"))
		}
	}
	return names
}
