package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/secret"
)

// SchemaJSON is the JSON Schema every configuration file must satisfy.
//
//go:embed schema.json
var SchemaJSON []byte

// Options change how a file is loaded.
type Options struct {
	// Lookup reads environment variables; os.LookupEnv when nil.
	Lookup func(string) (string, bool)
	// ResolveSecrets reads every credential reference. lint and plan leave
	// it off, so a file can be checked on a machine that lacks the secrets.
	ResolveSecrets bool
	// CheckIDs are the check ids a timeouts key may name (probe.IDs(),
	// which config cannot import); nil leaves the keys unchecked.
	CheckIDs []string
}

// Problem is one thing wrong with a file, at a line when known.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return p.File + ": " + p.Msg
}

// Error lists every problem found in a file.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// MaxFileSize bounds what Load reads: a real configuration is a few KiB,
// and /dev/zero must not fill memory.
const MaxFileSize = 1 << 20

// maxProblems bounds the report of one file; the rest are counted.
const maxProblems = 50

// Load reads and validates path.
func Load(path string, opt Options) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{[]Problem{{File: path, Msg: "cannot read: " + errors.Unwrap(err).Error()}}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{[]Problem{{File: path, Msg: "cannot read: " + unwrapOr(err).Error()}}}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{[]Problem{{File: path, Msg: fmt.Sprintf("larger than %d bytes; a configuration is a few KiB", MaxFileSize)}}}
	}
	return Parse(path, data, opt)
}

func unwrapOr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// Parse validates data, named name in messages.
func Parse(name string, data []byte, opt Options) (*Config, error) {
	if opt.Lookup == nil {
		opt.Lookup = os.LookupEnv
	}
	l := &loader{file: name, opt: opt}
	expanded := l.expand(data)
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(expanded, &doc); err != nil {
		return nil, l.fail(yamlErrLine(err), strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, l.fail(0, "empty file; expected at least 'version: 1'")
	}
	if n := bigMapping(&doc); n != nil {
		// yaml.v3 checks each key of a mapping against every other while
		// decoding: 80,000 keys took minutes. No real file comes close.
		return nil, l.fail(n.Line, fmt.Sprintf("a mapping with %d keys; at most %d are allowed in one mapping", len(n.Content)/2, maxMappingKeys))
	}
	l.validateSchema(&doc)
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	cfg := &Config{Path: name}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, l.fail(yamlErrLine(err), strings.TrimPrefix(err.Error(), "yaml: "))
	}
	l.semantic(cfg, &doc)
	if opt.ResolveSecrets && len(l.problems) == 0 {
		l.resolve(cfg, &doc)
	}
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	applyDefaults(cfg)
	return cfg, nil
}

// maxMappingKeys bounds one YAML mapping; the largest real one (timeouts,
// one per check) has under twenty keys.
const maxMappingKeys = 512

// bigMapping returns the first mapping with more than maxMappingKeys keys,
// in one walk of the tree.
func bigMapping(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.MappingNode && len(n.Content)/2 > maxMappingKeys {
		return n
	}
	for _, c := range n.Content {
		if b := bigMapping(c); b != nil {
			return b
		}
	}
	return nil
}

type loader struct {
	file     string
	opt      Options
	problems []Problem
	// expanded maps each value taken from the environment to the ${NAME}
	// it replaced: a value in the wrong field (deadline: ${REDIS_PASSWORD})
	// must not be echoed by the message that says so.
	expanded map[string]string
}

func (l *loader) add(line int, format string, a ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Msg: l.scrub(fmt.Sprintf(format, a...))})
}

// scrub replaces every value that came from ${...} with its reference.
// Short values are replaced only where quoted, so ${PORT}=1 does not mangle
// every digit of a message.
func (l *loader) scrub(msg string) string {
	for v, ref := range l.expanded {
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, ref)
			continue
		}
		for _, q := range []string{`"` + v + `"`, "'" + v + "'", "`" + v + "`", strconv.Quote(v)} {
			msg = strings.ReplaceAll(msg, q, `"`+ref+`"`)
		}
	}
	return msg
}

// fail is one problem from an error of a library (yaml), scrubbed.
func (l *loader) fail(line int, msg string) error {
	return &Error{[]Problem{{File: l.file, Line: line, Msg: l.scrub(msg)}}}
}

func (l *loader) err() error {
	slices.SortStableFunc(l.problems, func(a, b Problem) int { return a.Line - b.Line })
	if n := len(l.problems); n > maxProblems {
		more := Problem{File: l.file, Msg: fmt.Sprintf("and %d more problems", n-maxProblems)}
		l.problems = append(l.problems[:maxProblems], more)
	}
	return &Error{l.problems}
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default} line by line, so line numbers
// stay those of the file. Whole-line comments are left alone; $$ is a dollar.
func (l *loader) expand(data []byte) []byte {
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		lines[i] = envRef.ReplaceAllStringFunc(line, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := envRef.FindStringSubmatch(m)
			v, ok := l.opt.Lookup(sub[1])
			if !ok || v == "" {
				if sub[2] != "" {
					return sub[3]
				}
				l.add(i+1, "${%s}: environment variable %s is not set (write ${%s:-default} to give a default)", sub[1], sub[1], sub[1])
				return ""
			}
			if strings.ContainsAny(v, "\n\r") {
				l.add(i+1, "${%s}: the value of %s spans several lines; expected one line", sub[1], sub[1])
				return ""
			}
			if l.expanded == nil {
				l.expanded = map[string]string{}
			}
			l.expanded[v] = "${" + sub[1] + "}"
			return v
		})
	}
	return []byte(strings.Join(lines, "\n"))
}

var printer = message.NewPrinter(language.English)

var compiled = func() *jsonschema.Schema {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		panic("verifier config schema: " + err.Error())
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		panic("verifier config schema: " + err.Error())
	}
	return c.MustCompile("schema.json")
}()

func (l *loader) validateSchema(doc *yaml.Node) {
	var raw any
	if err := doc.Decode(&raw); err != nil {
		l.add(0, "%v", err)
		return
	}
	b, err := json.Marshal(raw)
	if err != nil {
		l.add(0, "cannot convert to JSON: %v (keys must be strings)", err)
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		l.add(0, "%v", err)
		return
	}
	verr, ok := compiled.Validate(inst).(*jsonschema.ValidationError)
	if !ok {
		return
	}
	for i, leaf := range leaves(verr) {
		if i == maxProblems || len(l.problems) > maxProblems {
			// err() says how many more; describing 80,000 typos helps nobody.
			l.add(0, "and more schema problems")
			return
		}
		l.schemaProblem(doc, leaf)
	}
}

func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func (l *loader) schemaProblem(doc *yaml.Node, e *jsonschema.ValidationError) {
	where := "/" + strings.Join(e.InstanceLocation, "/")
	key, val := nodeAt(doc, e.InstanceLocation)
	line := 0
	if key != nil {
		line = key.Line
	} else if val != nil {
		line = val.Line
	}
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		// One pass over the mapping for all its unknown keys, not one walk
		// per key: 80,000 of them took minutes.
		keyLines := map[string]int{}
		if val != nil && val.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(val.Content); i += 2 {
				if _, seen := keyLines[val.Content[i].Value]; !seen {
					keyLines[val.Content[i].Value] = val.Content[i].Line
				}
			}
		}
		props := slices.SortedFunc(slices.Values(k.Properties), func(a, b string) int { return keyLines[a] - keyLines[b] })
		for i, p := range props {
			if i == maxProblems {
				l.add(line, "%s: and %d more unknown keys", where, len(k.Properties)-maxProblems)
				break
			}
			pl, ok := keyLines[p]
			if !ok {
				pl = line
			}
			l.add(pl, "unknown key %q in %s", p, where)
		}
		return
	case *kind.Type:
		if strings.Contains(e.SchemaURL, "$defs/credential") {
			l.add(line, "%s: credentials are references, never inline values: write {env: NAME} or {file: PATH}", where)
			return
		}
	}
	l.add(line, "%s: %s", where, e.ErrorKind.LocalizedString(printer))
}

// nodeAt finds the key and value nodes at a JSON pointer path.
func nodeAt(doc *yaml.Node, path []string) (key, val *yaml.Node) {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					key, n, found = n.Content[i], n.Content[i+1], true
					break
				}
			}
			if !found {
				return key, n
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(n.Content) {
				return key, n
			}
			key, n = nil, n.Content[i]
		default:
			return key, n
		}
	}
	return key, n
}

var lineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// UnmarshalYAML parses a Go duration such as 500ms or 10s.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: expected a duration such as 500ms or 10s, got %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return d.D().String(), nil }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.D().String()) }

// UnmarshalYAML accepts only {env: NAME} or {file: PATH}.
func (c *Credential) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: credentials are references, never inline values: write {env: NAME} or {file: PATH}", n.Line)
	}
	var ref struct {
		Env  string `yaml:"env"`
		File string `yaml:"file"`
	}
	if err := n.Decode(&ref); err != nil {
		return err
	}
	c.Env, c.File = ref.Env, ref.File
	return nil
}

func (l *loader) resolve(cfg *Config, doc *yaml.Node) {
	one := func(c *Credential, path ...string) {
		_, n := nodeAt(doc, path)
		line := 0
		if n != nil {
			line = n.Line
		}
		name := strings.Join(path, ".")
		switch {
		case c.Env != "":
			v, ok := l.opt.Lookup(c.Env)
			if !ok || v == "" {
				l.add(line, "%s: environment variable %s is not set; expected the secret in it", name, c.Env)
				return
			}
			c.Value = secret.New(v)
		case c.File != "":
			b, err := os.ReadFile(c.File)
			if err != nil {
				l.add(line, "%s: cannot read secret file %s: %v", name, c.File, errors.Unwrap(err))
				return
			}
			v := strings.TrimRight(string(b), "\r\n")
			if v == "" {
				l.add(line, "%s: secret file %s is empty", name, c.File)
				return
			}
			c.Value = secret.New(v)
		}
	}
	if cfg.Redis != nil {
		one(&cfg.Redis.Password, "redis", "password")
	}
	if cfg.Postgres != nil {
		one(&cfg.Postgres.URL, "postgres", "url")
		if v := cfg.Postgres.URL.Value; !v.Empty() {
			// A URL the driver cannot parse never becomes reachable: exit 2
			// now rather than retry until the deadline. The value is a secret,
			// so neither it nor the driver's message is echoed.
			if _, err := pgconn.ParseConfig(v.Reveal()); err != nil {
				l.add(line(doc, "postgres", "url"), "postgres.url: the value of %s is not a PostgreSQL URL or key=value DSN the driver accepts", cfg.Postgres.URL.Ref())
			}
		}
	}
	if cfg.AC != nil {
		one(&cfg.AC.ClientSecret, "ac", "client_secret")
	}
	if k := cfg.Kubernetes; k != nil && k.Kubeconfig != "" {
		if _, err := os.Stat(k.Kubeconfig); err != nil {
			l.add(line(doc, "kubernetes", "kubeconfig"), "kubernetes.kubeconfig: cannot read %s: %v", k.Kubeconfig, errors.Unwrap(err))
		}
	}
}

func line(doc *yaml.Node, path ...string) int {
	k, v := nodeAt(doc, path)
	if k != nil {
		return k.Line
	}
	if v != nil {
		return v.Line
	}
	return 0
}

func applyDefaults(cfg *Config) {
	if cfg.Mode == "" {
		cfg.Mode = "local"
	}
	if k := cfg.Kubernetes; k != nil && k.Namespace == "" {
		k.Namespace = DefaultNamespace
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = Duration(DefaultDeadline)
	}
	if cfg.Backoff.Initial == 0 {
		cfg.Backoff.Initial = Duration(DefaultBackoffInitial)
	}
	if cfg.Backoff.Max == 0 {
		cfg.Backoff.Max = Duration(max(DefaultBackoffMax, cfg.Backoff.Initial.D()))
	}
}
