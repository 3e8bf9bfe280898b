package config

import (
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many nodes one document may expand to, so that nested
// aliases ("billion laughs") cannot blow up a load.
const maxNodes = 100_000

// decoder decodes a yaml.Node tree into Go values by walking both together.
// yaml.v3 has no strict mode for Node.Decode, and its type errors carry no key
// path, so the walk is done here: it rejects unknown and duplicate keys,
// expands ${VAR} in scalar values, reads <key>_file secrets and records the
// line of every key path for later validation messages.
type decoder struct {
	file      string
	dir       string // resolves relative <key>_file paths
	lookupEnv func(string) (string, bool)

	problems []Problem
	lines    map[string]int  // key path -> line
	failed   map[string]bool // key paths that could not be decoded
	nodes    int
}

type entry struct{ key, val *yaml.Node }

func (d *decoder) fail(line int, path, format string, args ...any) {
	d.failed[path] = true
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// moot reports whether a validation problem only echoes a decode problem:
// it is about a key that could not be decoded (or one inside it), or it
// summarizes a block one of whose keys could not be decoded.
func (d *decoder) moot(p problem) bool {
	for q := p.Path; ; q = parentPath(q) {
		if d.failed[q] {
			return true
		}
		if q == "" {
			break
		}
	}
	if p.summary {
		for f := range d.failed {
			if strings.HasPrefix(f, p.Path) && len(f) > len(p.Path) && (f[len(p.Path)] == '.' || f[len(p.Path)] == '[') {
				return true
			}
		}
	}
	return false
}

// decode decodes n into v. A null value leaves v as it is: the default, or
// nil for optional blocks.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n, ok := d.deref(n, path)
	if !ok || isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == reflect.TypeFor[Secret]():
		if s, ok := d.text(n, path, t); ok {
			v.Set(reflect.ValueOf(NewSecret(s)))
		}
		return
	case t == reflect.TypeFor[time.Duration]():
		if s, ok := d.text(n, path, t); ok && s != "" {
			dur, err := parseDuration(s)
			if err != nil {
				d.fail(n.Line, path, "%v", err)
				return
			}
			v.SetInt(int64(dur))
		}
		return
	case t == reflect.TypeFor[ByteSize]():
		if s, ok := d.text(n, path, t); ok && s != "" {
			b, err := ParseByteSize(s)
			if err != nil {
				d.fail(n.Line, path, "%v", err)
				return
			}
			v.SetInt(int64(b))
		}
		return
	case t == reflect.TypeFor[Tolerance]():
		if s, ok := d.text(n, path, t); ok && s != "" {
			tol, err := ParseTolerance(s)
			if err != nil {
				d.fail(n.Line, path, "%v", err)
				return
			}
			v.Set(reflect.ValueOf(tol))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	s, ok := d.text(n, path, v.Type())
	if !ok {
		return
	}
	if v.Kind() == reflect.String {
		v.SetString(s)
		return
	}
	if s == "" { // e.g. ${VAR:-} expanded to nothing: keep the default
		return
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.fail(n.Line, path, "expected an integer, got %s", quoteValue(s))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n.Line, path, "expected a number, got %s", quoteValue(s))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(n.Line, path, "expected true or false, got %s", quoteValue(s))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("config: cannot decode into %s", v.Type())) // programming error in the schema
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			fields[name] = i
		}
	}
	entries := d.entries(n, path)
	present := map[string]bool{}
	for _, e := range entries {
		present[e.key.Value] = true
	}
	for _, e := range entries {
		key := e.key.Value
		p := childPath(path, key)
		if i, ok := fields[key]; ok {
			d.lines[p] = e.key.Line
			d.decode(e.val, v.Field(i), p)
			continue
		}
		if base, ok := strings.CutSuffix(key, "_file"); ok {
			if i, ok := fields[base]; ok && t.Field(i).Type == reflect.TypeFor[Secret]() {
				d.lines[p] = e.key.Line
				if present[base] {
					d.fail(e.key.Line, p, "%s and %s are mutually exclusive", base, key)
					continue
				}
				bp := childPath(path, base)
				d.lines[bp] = e.key.Line
				if !d.secretFile(e.val, v.Field(i), p) {
					d.failed[bp] = true
				}
				continue
			}
			if _, ok := fields[base]; ok {
				d.fail(e.key.Line, p, "unknown key: only dsn, access_key_id, secret_access_key and session_token can be read from a file")
				continue
			}
		}
		d.fail(e.key.Line, p, "unknown key%s", suggest(key, knownKeys(t)))
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, e := range d.entries(n, path) {
		p := childPath(path, e.key.Value)
		d.lines[p] = e.key.Line
		key := reflect.ValueOf(e.key.Value)
		elem := reflect.New(t.Elem()).Elem()
		if old := v.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		// An empty entry ("local:") still defines the name; validation then
		// reports what it lacks.
		if elem.Kind() == reflect.Pointer && elem.IsNil() {
			elem.Set(reflect.New(t.Elem().Elem()))
		}
		d.decode(e.val, elem, p)
		v.SetMapIndex(key, elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n.Line, path, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := indexPath(path, i)
		d.lines[p] = item.Line
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

// secretFile sets secret to the content of the file named by n, without
// trailing newlines, and reports whether it could. Errors name the file,
// never its content.
func (d *decoder) secretFile(n *yaml.Node, secret reflect.Value, path string) bool {
	n, ok := d.deref(n, path)
	if !ok {
		return false
	}
	if isNull(n) {
		d.fail(n.Line, path, "expected a file path")
		return false
	}
	name, ok := d.text(n, path, reflect.TypeFor[string]())
	if !ok {
		return false
	}
	if name == "" {
		d.fail(n.Line, path, "expected a file path")
		return false
	}
	data, err := readSecretFile(resolve(d.dir, name))
	if err != nil {
		d.fail(n.Line, path, "%v", err)
		return false
	}
	secret.Set(reflect.ValueOf(NewSecret(strings.TrimRight(string(data), "\r\n"))))
	return true
}

func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("read %s: larger than %s", name, ByteSize(maxSecretFile))
	}
	return data, nil
}

// entries returns the key/value pairs of mapping n, with "<<" merge keys
// applied (explicit keys win) and duplicate keys reported.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var out, merged []entry
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merged = append(merged, d.mergeEntries(val, path)...)
			continue
		}
		k, ok := d.deref(k, path)
		if !ok {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k.Line, path, "keys must be strings, got %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k.Line, childPath(path, k.Value), "duplicate key (first defined on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, entry{k, val})
	}
	for _, e := range merged {
		if _, ok := seen[e.key.Value]; !ok {
			seen[e.key.Value] = e.key.Line
			out = append(out, e)
		}
	}
	return out
}

// mergeEntries returns the entries a "<<" key merges in: one mapping or a
// list of mappings, earlier ones winning.
func (d *decoder) mergeEntries(n *yaml.Node, path string) []entry {
	n, ok := d.deref(n, path)
	if !ok {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		return d.entries(n, path)
	case yaml.SequenceNode:
		var out []entry
		for _, item := range n.Content {
			item, ok := d.deref(item, path)
			if !ok {
				continue
			}
			if item.Kind != yaml.MappingNode {
				d.fail(item.Line, path, "<< expects a mapping or a list of mappings, got %s", kindName(item))
				continue
			}
			out = append(out, d.entries(item, path)...)
		}
		return out
	}
	d.fail(n.Line, path, "<< expects a mapping or a list of mappings, got %s", kindName(n))
	return nil
}

// deref follows aliases and counts nodes against maxNodes.
func (d *decoder) deref(n *yaml.Node, path string) (*yaml.Node, bool) {
	d.nodes++
	if d.nodes == maxNodes+1 {
		d.fail(n.Line, path, "document expands to more than %d nodes", maxNodes)
	}
	if d.nodes > maxNodes {
		return n, false
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n.Line, path, "unknown alias")
			return n, false
		}
		n = n.Alias
	}
	return n, true
}

// text returns the expanded value of scalar n, reporting a non-scalar as a
// type error against want.
func (d *decoder) text(n *yaml.Node, path string, want reflect.Type) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, "expected %s, got %s", typeName(want), kindName(n))
		return "", false
	}
	// An unquoted "!= 0" is the YAML tag "!=" on the value "0". The tag is
	// not quoted back: it may be part of a secret.
	if len(n.Tag) > 1 && !strings.HasPrefix(n.Tag, "!!") && strings.HasPrefix(n.Tag, "!") {
		d.fail(n.Line, path, `a value starting with "!" must be quoted, e.g. expect: "!= 0"`)
		return "", false
	}
	return d.expand(n.Value, n.Line, path)
}

// expand replaces ${VAR} and ${VAR:-default} with values from lookupEnv and
// $$ with $. ${VAR:-default} uses default when VAR is unset or empty. Any
// other $ is kept as is. Problems name the variable, never its value.
func (d *decoder) expand(s string, line int, path string) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				d.fail(line, path, "unterminated ${ (write $$ for a literal $)")
				return "", false
			}
			name, def, hasDef := strings.Cut(s[i+2:i+2+end], ":-")
			i += 2 + end + 1
			if !isEnvName(name) {
				// Show only the name-like start: the rest may be a default
				// written in another syntax, e.g. ${DSN-postgres://u:pw@h}.
				j := 0
				for j < len(name) && isEnvName("_"+name[:j+1]) {
					j++
				}
				d.fail(line, path, "invalid variable reference ${%s...}: want ${NAME} or ${NAME:-default}", name[:min(j, 40)])
				ok = false
				continue
			}
			val, set := d.lookupEnv(name)
			switch {
			case hasDef && val == "":
				val = def
			case !set:
				d.fail(line, path, "environment variable %s is not set (use ${%s:-default} for a default)", name, name)
				ok = false
			}
			b.WriteString(val)
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), ok
}

func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if r != '_' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}

// yamlName returns the yaml key of a struct field, or "" if it has none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// knownKeys lists the keys a mapping decoded into struct t accepts.
func knownKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			keys = append(keys, name)
			if f.Type == reflect.TypeFor[Secret]() {
				keys = append(keys, name+"_file")
			}
		}
	}
	return keys
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "" if none is close.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist && dist < len(key) {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: Levenshtein plus
// transpositions of adjacent characters.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Secret]():
		return "a string"
	case reflect.TypeFor[time.Duration]():
		return "a duration"
	case reflect.TypeFor[ByteSize]():
		return "a size"
	case reflect.TypeFor[Tolerance]():
		return "a count or a percentage"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	}
	return "a mapping"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a string"
	}
	return "nothing"
}

// quoteValue quotes a non-secret value for a message, shortened if long.
func quoteValue(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "..."
	}
	return strconv.Quote(s)
}

// childPath appends a map key to a key path: "a.b", or a["odd key"] when the
// key has characters that would make the path ambiguous.
func childPath(parent, key string) string {
	if !isPlainKey(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

func isPlainKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r != '_' && r != '-' && r != '.' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// parentPath strips the last element from a key path built by childPath and
// indexPath.
func parentPath(p string) string {
	cut, inQuote := 0, false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			cut = i
		}
	}
	return p[:cut]
}
