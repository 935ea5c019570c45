package ac

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/secret"
)

// Client is one service client from the clients file.
type Client struct {
	ID          string
	Secret      secret.Value
	ServiceType string
	Scopes      []string
}

// KnownServiceTypes are the service_type values AC issues tokens for.
var KnownServiceTypes = []string{auth.ServiceMeetingController, auth.ServiceGlobalController, auth.ServiceVerifier, auth.ServiceWebClient}

// KnownScopes are the scopes a client may be granted.
var KnownScopes = []string{auth.ScopeWriteGC, auth.ScopeWriteMC, auth.ScopeReadGC, auth.ScopeMeetingJoin}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

// fileSchema mirrors the clients file. Unknown keys are refused so a typo
// (client_secrte) fails loudly instead of leaving a client without a secret.
type fileSchema struct {
	Clients []clientEntry `yaml:"clients"`
}

type clientEntry struct {
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	ServiceType  string   `yaml:"service_type"`
	Scopes       []string `yaml:"scopes"`
}

// maxClientsFile bounds what we read: the file is a small Kubernetes Secret.
const maxClientsFile = 1 << 20

// LoadClients reads and validates the clients file. Errors name the file and,
// where yaml knows it, the line; they never contain a secret.
func LoadClients(path string) ([]Client, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxClientsFile+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathErr(err))
	}
	if len(data) > maxClientsFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxClientsFile)
	}
	clients, err := ParseClients(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return clients, nil
}

// ParseClients parses and validates the YAML of a clients file.
func ParseClients(data []byte) ([]Client, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc fileSchema
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file; expected a top-level clients: list")
		}
		return nil, yamlError(err)
	}
	lines := entryLines(data)
	seen := map[string]bool{}
	out := make([]Client, 0, len(doc.Clients))
	for i, e := range doc.Clients {
		where := fmt.Sprintf("clients[%d]", i)
		if i < len(lines) {
			where = fmt.Sprintf("line %d: %s", lines[i], where)
		}
		c := Client{ID: e.ClientID, Secret: secret.New(e.ClientSecret), ServiceType: e.ServiceType, Scopes: e.Scopes}
		if err := validateClient(c); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("%s: client_id %q appears twice", where, c.ID)
		}
		seen[c.ID] = true
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no clients; expected a top-level clients: list with at least one entry")
	}
	return out, nil
}

func validateClient(c Client) error {
	if !clientIDPattern.MatchString(c.ID) {
		return fmt.Errorf("client_id %q: expected 1-255 characters of [A-Za-z0-9._-] starting with a letter or digit", c.ID)
	}
	if strings.TrimSpace(c.Secret.Reveal()) == "" {
		return fmt.Errorf("client %q: client_secret is empty", c.ID)
	}
	if len(c.Secret.Reveal()) > 72 {
		// bcrypt only looks at the first 72 bytes; a longer secret would
		// silently accept any string with the same prefix.
		return fmt.Errorf("client %q: client_secret is longer than 72 bytes (bcrypt's limit)", c.ID)
	}
	if !slices.Contains(KnownServiceTypes, c.ServiceType) {
		return fmt.Errorf("client %q: service_type %q: expected one of %s", c.ID, c.ServiceType, strings.Join(KnownServiceTypes, ", "))
	}
	if len(c.Scopes) == 0 {
		return fmt.Errorf("client %q: scopes is empty; expected at least one of %s", c.ID, strings.Join(KnownScopes, ", "))
	}
	for _, s := range c.Scopes {
		if !slices.Contains(KnownScopes, s) {
			return fmt.Errorf("client %q: scope %q: expected one of %s", c.ID, s, strings.Join(KnownScopes, ", "))
		}
	}
	return nil
}

// entryLines returns the line of each item of the clients list, so
// validation errors can point at it.
func entryLines(data []byte) []int {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "clients" {
			var lines []int
			for _, item := range m.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

// yamlError flattens yaml's multi-line errors into one line ("line 7: field
// foo not found in type ...") so a misconfigured pod logs a single line.
// Values yaml quotes in backticks are hidden: a secret pasted under the
// wrong key must not reach the log.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	msg = quotedValue.ReplaceAllString(msg, "(value not shown)")
	msg = unknownField.ReplaceAllString(msg, "unknown key $1")
	return errors.New(strings.ReplaceAll(msg, "\n", "; "))
}

var (
	quotedValue  = regexp.MustCompile("`[^`]*`")
	unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
