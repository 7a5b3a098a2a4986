package comet

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// fence is one fenced code block of a Markdown file.
type fence struct {
	line int    // of the opening ```
	info string // what follows the opening ```: the block's language
	body string
}

// fences returns the fenced code blocks of a Markdown text.
func fences(t *testing.T, text []byte) []fence {
	t.Helper()
	var (
		out  []fence
		open *fence
		body strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case open == nil && strings.HasPrefix(line, "```"):
			open = &fence{line: n, info: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
			body.Reset()
		case open != nil && strings.TrimSpace(line) == "```":
			open.body = body.String()
			out = append(out, *open)
			open = nil
		case open != nil:
			body.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if open != nil {
		t.Fatalf("the block at line %d is never closed", open.line)
	}
	return out
}

// synopsis matches the placeholders of a syntax synopsis (<matcher>,
// [<url>], <host:port...>, ...), which a pasted Caddyfile must not hold.
var synopsis = regexp.MustCompile(`<[A-Za-z_][^<>]*>|^\.\.\.$|^…$`)

// docFiles are the Markdown files whose Caddyfiles must run as written:
// the README, every page of docs/ and the examples' notes.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	for _, pattern := range []string{"docs/*.md", "examples/*.md", "examples/*/*.md"} {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matches...)
	}
	return files
}

// Every Caddyfile in the README and docs/ runs as written: each ```caddyfile
// block adapts, holds no synopsis placeholder, and a block that looks like a
// Caddyfile (a line opening a block with '{') says what it is: caddyfile
// when it is one to paste, text when it is a synopsis of the syntax.
func TestDocsCaddyfiles(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	checked := 0
	for _, name := range docFiles(t) {
		text, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fences(t, text) {
			where := fmt.Sprintf("%s:%d", name, f.line)
			// Blank lines before the block make the Caddyfile's line
			// numbers the Markdown file's.
			body := []byte(strings.Repeat("\n", f.line) + f.body)
			switch f.info {
			case "caddyfile":
			case "":
				for l := range strings.Lines(f.body) {
					if strings.HasSuffix(strings.TrimSpace(l), "{") {
						t.Errorf("%s: a block with no language that looks like a Caddyfile (%q): "+
							"mark it caddyfile (and make it adapt) or text (a synopsis)", where, strings.TrimSpace(l))
						break
					}
				}
				continue
			default:
				continue
			}
			checked++
			tokens, err := caddyfile.Tokenize(body, name)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			for _, tok := range tokens {
				if !tok.Quoted() && synopsis.MatchString(tok.Text) {
					t.Errorf("%s:%d: the placeholder %q (in the block at line %d): a pasted Caddyfile would fail; "+
						"write a value, or mark the block text", name, tok.Line, tok.Text, f.line)
				}
			}
			if _, _, err := adapter.Adapt(body, map[string]any{"filename": name}); err != nil {
				t.Errorf("%s: the block does not adapt: %v", where, err)
			}
		}
	}
	if checked < 3 {
		t.Fatalf("only %d caddyfile blocks in %v: is the test still reading them?", checked, docFiles(t))
	}
}

// configurationDoc is where the full directive is documented.
const configurationDoc = "docs/configuration.md"

// The full directive of docs/configuration.md is what it says: every
// setting at its default. A route configured by it gets the hub settings,
// flags and operations of a bare comet directive.
func TestDocsFullDirectiveIsTheDefaults(t *testing.T) {
	doc, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatal(err)
	}
	intro := bytes.Index(doc, []byte("The full directive, with every setting at its default"))
	if intro < 0 {
		t.Fatal(configurationDoc + " no longer introduces the full directive as its defaults")
	}
	introLine := bytes.Count(doc[:intro], []byte("\n")) + 1
	var full *fence
	for _, f := range fences(t, doc) {
		if f.line > introLine && f.info == "caddyfile" {
			full = &f
			break
		}
	}
	if full == nil {
		t.Fatal("no caddyfile block after the full directive's introduction")
	}
	handler := func(caddyfileText string) Handler {
		t.Helper()
		doc, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
		if err != nil {
			t.Fatal(err)
		}
		var tree any
		if err := json.Unmarshal(doc, &tree); err != nil {
			t.Fatal(err)
		}
		raw := findHandler(tree)
		if raw == nil {
			t.Fatalf("no comet handler in %s", doc)
		}
		var h Handler
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	got, bare := handler(full.body), handler("comet.example.com {\n\tcomet\n}\n")
	if g, b := got.HubSettings.config().Normalize(), bare.HubSettings.config().Normalize(); g != b {
		t.Errorf("%s:%d: hub settings %+v, want the defaults %+v", configurationDoc, full.line, g, b)
	}
	if bits := cmp.Or(got.IPv6PrefixPerIP, DefaultIPv6PrefixPerIP); bits != DefaultIPv6PrefixPerIP {
		t.Errorf("%s:%d: ipv6_prefix_per_ip %d, want the default %d", configurationDoc, full.line, bits, DefaultIPv6PrefixPerIP)
	}
	if got.QuoteJSON || got.EnableStatus {
		t.Errorf("%s:%d: quote_json %v, enable_status %v; both are off by default", configurationDoc, full.line, got.QuoteJSON, got.EnableStatus)
	}
	if hubName := cmp.Or(got.Hub, "default"); hubName != "default" {
		t.Errorf("%s:%d: hub %q, want default", configurationDoc, full.line, hubName)
	}
	if len(got.Allow) > 0 && !slices.Equal(got.Allow, allOps) {
		t.Errorf("%s:%d: allow %v, want every operation %v", configurationDoc, full.line, got.Allow, allOps)
	}
	if store := string(got.StoreRaw); store != "" && store != `{"store":"memory"}` {
		t.Errorf("%s:%d: store %s, want memory", configurationDoc, full.line, store)
	}
}

// The README's reference table has a row for every subdirective of the
// full directive in docs/configuration.md, and no other, each with the
// default the full directive gives it; the parser knows every one.
func TestReadmeReferenceTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Caddyfile reference\n")
	if !ok {
		t.Fatal("README.md has no ## Caddyfile reference section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)[^|]*\\| ([^|]*) \\|")
	table := map[string]string{} // subdirective -> default cell
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		table[m[1]] = m[2]
	}

	doc, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatal(err)
	}
	intro := strings.Index(string(doc), "The full directive, with every setting at its default")
	if intro < 0 {
		t.Fatal(configurationDoc + " no longer introduces the full directive as its defaults")
	}
	_, block, ok := strings.Cut(string(doc[intro:]), "```caddyfile\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok {
		t.Fatal("no caddyfile block after the full directive's introduction in " + configurationDoc)
	}
	full := map[string][]string{} // subdirective -> its values, none when commented out
	for line := range strings.Lines(block) {
		setting, ok := strings.CutPrefix(line, "\t\t")
		if !ok {
			continue
		}
		setting, _, _ = strings.Cut(setting, " #")
		commented := strings.HasPrefix(setting, "# ")
		fields := strings.Fields(strings.TrimPrefix(setting, "# "))
		if len(fields) == 0 {
			continue
		}
		full[fields[0]] = nil
		if !commented {
			full[fields[0]] = fields[1:]
		}
	}

	if len(table) < 20 || len(full) < 20 {
		t.Fatalf("%d rows in the README's table, %d settings in the full directive: is the test still reading them?", len(table), len(full))
	}
	for name, cell := range table {
		values, ok := full[name]
		if !ok {
			t.Errorf("README.md's reference table has %s, which the full directive in %s lacks", name, configurationDoc)
		}
		// A default in backquotes is the value the full directive gives.
		if def, ok := strings.CutPrefix(cell, "`"); ok && values != nil {
			def, _, _ = strings.Cut(def, "`")
			if got := strings.Join(values, " "); got != def {
				t.Errorf("README.md's reference table gives %s the default %q, the full directive %q", name, def, got)
			}
		}
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":80 {\n\tcomet {\n\t\t"+name+"\n\t}\n}\n"), nil)
		if err != nil && strings.Contains(err.Error(), "unknown subdirective") {
			t.Errorf("README.md's reference table has %s, which the Caddyfile parser does not know: %v", name, err)
		}
	}
	for name := range full {
		if _, ok := table[name]; !ok {
			t.Errorf("README.md's reference table has no row for %s", name)
		}
	}
}

// findHandler returns the JSON of the first comet handler in an adapted
// configuration.
func findHandler(v any) json.RawMessage {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "comet" {
			raw, _ := json.Marshal(v)
			return raw
		}
		for _, child := range v {
			if raw := findHandler(child); raw != nil {
				return raw
			}
		}
	case []any:
		for _, child := range v {
			if raw := findHandler(child); raw != nil {
				return raw
			}
		}
	}
	return nil
}

// TestDocsCaddyfiles catches what it is for: the full directive as the README
// once had it, with a synopsis matcher and no site around a fragment.
func TestDocsCaddyfilesCatchesPlaceholders(t *testing.T) {
	for _, bad := range []string{
		"comet.example.com {\n\tcomet [<matcher>] {\n\t\thub default\n\t}\n}\n",
		"store redis [<url>] {\n\taddresses <host:port...>\n}\n",
		":80 {\n\tcomet {\n\t\tjwt { ... }\n\t}\n}\n",
	} {
		tokens, err := caddyfile.Tokenize([]byte(bad), "bad")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, tok := range tokens {
			found = found || (!tok.Quoted() && synopsis.MatchString(tok.Text))
		}
		if !found {
			t.Errorf("no placeholder found in %q", bad)
		}
	}
	for _, good := range []string{`respond "<h1>hi</h1>"`, "{env.REDIS_PASSWORD}", "/comet/*", "@backend"} {
		tokens, _ := caddyfile.Tokenize([]byte(good), "good")
		for _, tok := range tokens {
			if !tok.Quoted() && synopsis.MatchString(tok.Text) {
				t.Errorf("%q taken for a placeholder in %q", tok.Text, good)
			}
		}
	}
}
