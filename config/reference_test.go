package config

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The documentation of the config must not drift from the structs: every key
// has a row in the README's configuration reference and appears in
// config.example.yaml (a commented-out line counts), and neither names a key
// that does not exist.

// Key paths are written as in the README: map entries the user names are
// <name>, list items [], e.g. targets.<name>.verify.checks[].max_age.

// schemaKeys returns every key path of the config: leaves maps to true,
// blocks (keys holding other keys) to false.
func schemaKeys() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case isLeafType(t):
			keys[path] = true
		case t.Kind() == reflect.Struct:
			if path != "" {
				keys[path] = false
			}
			for i := range t.NumField() {
				if name := yamlName(t.Field(i)); name != "" {
					walk(t.Field(i).Type, childPath(path, name))
				}
			}
		case t.Kind() == reflect.Map:
			keys[path] = false
			walk(t.Elem(), path+".<name>")
		case t.Kind() == reflect.Slice:
			keys[path] = false
			walk(t.Elem(), path+"[]")
		default:
			panic("reference_test: unhandled type " + t.String() + " at " + path)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// isLeafType: values written on one line: scalars, durations, sizes,
// secrets, lists of strings and maps of strings (sandbox.images).
func isLeafType(t reflect.Type) bool {
	switch t {
	case reflect.TypeFor[Secret](), reflect.TypeFor[time.Duration](), reflect.TypeFor[ByteSize](), reflect.TypeFor[Tolerance]():
		return true
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Map:
		return t.Elem().Kind() != reflect.Struct && t.Elem().Kind() != reflect.Pointer
	case reflect.Struct, reflect.Pointer:
		return false
	}
	return true
}

var referenceRow = regexp.MustCompile("^\\| `([^`]+)` \\|(.*)\\|\\s*$")

// readmeKeys returns the keys of the README's configuration reference table
// and the rows whose type, default or meaning column is empty.
func readmeKeys(t *testing.T) (keys []string, incomplete []string) {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Configuration reference\n")
	if !ok {
		t.Fatal(`README.md has no "## Configuration reference" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	for _, line := range strings.Split(section, "\n") {
		m := referenceRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		keys = append(keys, m[1])
		cols := strings.Split(m[2], " | ")
		if len(cols) != 3 || slices.ContainsFunc(cols, func(c string) bool { return strings.TrimSpace(c) == "" }) {
			incomplete = append(incomplete, m[1])
		}
	}
	if len(keys) == 0 {
		t.Fatal("README.md's configuration reference has no rows like | `key` | type | default | meaning |")
	}
	return keys, incomplete
}

func TestReadmeReference(t *testing.T) {
	schema := schemaKeys()
	keys, incomplete := readmeKeys(t)
	seen := map[string]bool{}
	for _, k := range keys {
		if _, ok := schema[k]; !ok {
			t.Errorf("README.md's configuration reference names `%s`, which is not a config key", k)
		}
		if seen[k] {
			t.Errorf("README.md's configuration reference has two rows for `%s`", k)
		}
		seen[k] = true
	}
	for _, k := range incomplete {
		t.Errorf("README.md's configuration reference: the row of `%s` needs type, default and meaning", k)
	}
	for _, k := range sortedKeys(schema) {
		if schema[k] && !seen[k] {
			t.Errorf("README.md's configuration reference lacks `%s`: add a row | `%s` | type | default | meaning |", k, k)
		}
	}
}

// commentedKey matches a commented-out key line: "#   identity_file: x".
var commentedKey = regexp.MustCompile(`^(\s*)# ?(\s*(?:- )?[a-z_]+:(?:\s|$).*)$`)

func TestExampleReference(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment key lines, so documented optional keys count.
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if m := commentedKey.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + m[2]
		}
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader([]byte(strings.Join(lines, "\n")))).Decode(&root); err != nil {
		t.Fatalf("config.example.yaml with its commented-out keys uncommented: %v", err)
	}
	found := map[string]bool{}
	var walk func(n *yaml.Node, t reflect.Type, path string)
	walk = func(n *yaml.Node, typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if path != "" {
			found[path] = true
		}
		switch {
		case isLeafType(typ):
		case typ.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
			fields := map[string]reflect.Type{}
			for i := range typ.NumField() {
				if name := yamlName(typ.Field(i)); name != "" {
					fields[name] = typ.Field(i).Type
				}
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				ft, ok := fields[key]
				if base, isFile := strings.CutSuffix(key, "_file"); !ok && isFile && fields[base] == reflect.TypeFor[Secret]() {
					key, ft, ok = base, fields[base], true
				}
				if !ok {
					t.Errorf("config.example.yaml:%d: %s is not a config key", n.Content[i].Line, childPath(path, key))
					continue
				}
				walk(n.Content[i+1], ft, childPath(path, key))
			}
		case typ.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i], typ.Elem(), path+".<name>")
			}
		case typ.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
			for _, item := range n.Content {
				walk(item, typ.Elem(), path+"[]")
			}
		default:
			t.Errorf("config.example.yaml:%d: %s has the wrong shape", n.Line, path)
		}
	}
	walk(root.Content[0], reflect.TypeFor[Config](), "")

	schema := schemaKeys()
	for _, k := range sortedKeys(schema) {
		if schema[k] && !found[k] {
			t.Errorf("config.example.yaml lacks %s: add it (a commented-out line counts, e.g. `# %s: ...`)", k, k[strings.LastIndexAny(k, ".]")+1:])
		}
	}

	// The example as shipped (comments as comments) must load.
	env := map[string]string{"ORDERS_DSN": "postgres://backproof@db/orders", "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"}
	if _, err := Parse(data, "../config.example.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Errorf("config.example.yaml does not load: %v", err)
	}
}

// TestReferenceCatchesDrift: the walks see a key the structs lack and one
// the documents lack (guards the tests above against passing vacuously).
func TestReferenceCatchesDrift(t *testing.T) {
	schema := schemaKeys()
	for _, k := range []string{"listen", "sandbox.images", "destinations.<name>.part_size",
		"targets.<name>.retention.keep_within", "targets.<name>.verify.checks[].max_age"} {
		if !schema[k] {
			t.Errorf("schema lacks leaf %s", k)
		}
	}
	for _, k := range []string{"targets.<name>.verify", "destinations", "targets.<name>.verify.checks"} {
		if leaf, ok := schema[k]; !ok || leaf {
			t.Errorf("%s should be a block", k)
		}
	}
	if _, ok := schema["targets.<name>.name"]; ok {
		t.Error(`yaml:"-" fields are not keys`)
	}
	if m := commentedKey.FindStringSubmatch("      # amcheck: false   # default: on"); m == nil || m[1]+m[2] != "      amcheck: false   # default: on" {
		t.Errorf("commented key not recognised: %q", m)
	}
	for _, prose := range []string{"# Omit both keys to use the AWS default credential chain.", "# read from a file: dsn_file: /x"} {
		if commentedKey.MatchString(prose) {
			t.Errorf("prose taken for a key: %q", prose)
		}
	}
}
