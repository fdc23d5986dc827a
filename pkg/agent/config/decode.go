package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/ringtap/ringtap/pkg/storage"
)

// extensionPrefix starts keys that are ignored anywhere, so that a file
// can hold YAML anchors for its captures to merge (x-defaults: &d ...).
const extensionPrefix = "x-"

// reader turns a file's syntax tree into values. goccy/go-yaml decodes
// each mapping strictly into a struct of ast.Node fields (the keys it
// may have); the fields' nodes keep their positions for the messages.
type reader struct {
	dec     *yaml.Decoder
	ps      *problems
	nodes   map[string]ast.Node // every value given, by key path
	bad     map[string]bool     // key paths whose value was rejected
	anchors map[string]ast.Node // the values of the file's &anchors
	// capPaths are the key paths of Config.Captures (captures[i]).
	capPaths []string
	// noCaptures accepts a file without captures (WithoutCaptures).
	noCaptures bool
}

func newReader(data []byte, source string) *reader {
	return &reader{
		dec: yaml.NewDecoder(bytes.NewReader(data),
			yaml.DisallowUnknownField(), yaml.AllowFieldPrefixes(extensionPrefix)),
		ps:      &problems{file: source},
		nodes:   map[string]ast.Node{},
		bad:     map[string]bool{},
		anchors: map[string]ast.Node{},
	}
}

// document returns the file's only document, nil when it is empty.
func (r *reader) document() (ast.Node, bool) {
	var root ast.Node
	if err := r.dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		r.yamlError("", err)
		return nil, false
	}
	var next ast.Node
	if err := r.dec.Decode(&next); err == nil {
		r.fail(next, "", "a second YAML document begins here: an agent's config is one document, so remove the ---")
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		r.yamlError("", err)
		return nil, false
	}
	if root != nil {
		for _, a := range ast.Filter(ast.AnchorType, root) {
			a := a.(*ast.AnchorNode)
			r.anchors[a.Name.GetToken().Value] = a.Value
		}
	}
	return root, true
}

// yamlError reports an error of goccy/go-yaml (syntax, duplicate key)
// at its position.
func (r *reader) yamlError(path string, err error) {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil {
		r.ps.add(position{1, 0}, path, err, "invalid YAML (%v): fix the syntax", err)
		return
	}
	p := ye.GetToken().Position
	msg := strings.TrimSpace(ye.GetMessage())
	if strings.Contains(msg, "already defined") {
		// mapping key "x" already defined at [3:5]
		r.ps.add(position{p.Line, p.Column}, path, err, "%s: remove one of the two", msg)
		return
	}
	r.ps.add(position{p.Line, p.Column}, path, err, "invalid YAML (%s): fix the syntax here", msg)
}

// fail reports a mistake in the value n at path.
func (r *reader) fail(n ast.Node, path, format string, args ...any) {
	r.bad[path] = true
	r.ps.add(posOf(n), path, nil, format, args...)
}

// failErr reports a mistake in the value n at path with its cause.
func (r *reader) failErr(n ast.Node, path string, cause error, format string, args ...any) {
	r.bad[path] = true
	r.ps.add(posOf(n), path, cause, format, args...)
}

// at is the position of the value at path, or of its nearest given
// ancestor (the place to add a missing key), or the file's start.
func (r *reader) at(path string) position {
	for p := path; p != ""; p = parent(p) {
		if n, ok := r.nodes[p]; ok {
			return posOf(n)
		}
	}
	return position{1, 0}
}

// parent is the key path of path's mapping or list: a.b[2].c -> a.b[2]
// -> a.b -> a -> "".
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// join appends key to the key path p.
func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

// posOf is where n begins: a mapping at its first key.
func posOf(n ast.Node) position {
	switch m := n.(type) {
	case nil:
		return position{1, 0}
	case *ast.MappingNode:
		if len(m.Values) > 0 && !m.IsFlowStyle {
			return posOf(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return posOf(m.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return position{1, 0}
	}
	return position{tk.Position.Line, tk.Position.Column}
}

// value strips what YAML puts around a value: anchors, aliases, tags,
// comments. It is nil for a null.
func (r *reader) value(n ast.Node) ast.Node {
	for range 100 { // an alias cannot refer to itself, but be sure
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			n = r.anchors[v.Value.GetToken().Value]
		case *ast.TagNode:
			n = v.Value
		case *ast.CommentGroupNode:
			return nil
		default:
			if n != nil && n.Type() == ast.NullType {
				return nil
			}
			return n
		}
	}
	return nil
}

// mapping decodes the mapping n at path into dst, a pointer to a struct
// of ast.Node fields tagged with the keys the mapping may have, and
// records every value given. what names the mapping in a message ("a
// capture"). It reports unknown keys and returns false when n is not a
// mapping.
func (r *reader) mapping(n ast.Node, path, what string, dst any) bool {
	keys := keysOf(dst)
	if _, ok := n.(*ast.MappingNode); !ok {
		r.fail(n, path, "want %s, a mapping with keys such as %s, not %s", what, list(keys[:min(2, len(keys))], "and"), describe(n))
		return false
	}
	err := r.dec.DecodeFromNode(n, dst)
	var unknown *yaml.UnknownFieldError
	switch {
	case errors.As(err, &unknown):
		r.unknownKeys(n.(*ast.MappingNode), path, what, keys, unknown)
	case err != nil:
		r.yamlError(path, err)
		return false
	}
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		if f, ok := v.Field(i).Interface().(ast.Node); ok {
			if f = r.value(f); f != nil {
				v.Field(i).Set(reflect.ValueOf(f))
				r.nodes[join(path, keys[i])] = f
			} else {
				v.Field(i).Set(reflect.Zero(v.Field(i).Type()))
			}
		}
	}
	return true
}

// unknownKeys reports each key of m that is not one of keys, in order;
// the key goccy/go-yaml found if it came from a merged mapping.
func (r *reader) unknownKeys(m *ast.MappingNode, path, what string, keys []string, found *yaml.UnknownFieldError) {
	reported := false
	for _, mv := range m.Values {
		k := mv.Key.GetToken().Value
		if k == "<<" || strings.HasPrefix(k, extensionPrefix) || slices.Contains(keys, k) {
			continue
		}
		r.unknownKey(mv.Key, join(path, k), what, k, keys)
		reported = true
	}
	if !reported && found.Token != nil {
		k := found.Token.Value
		p := found.Token.Position
		r.ps.add(position{p.Line, p.Column}, join(path, k), found, "%s", unknownMsg(what, k, keys))
	}
}

func (r *reader) unknownKey(n ast.Node, path, what, key string, keys []string) {
	r.ps.add(posOf(n), path, nil, "%s", unknownMsg(what, key, keys))
}

func unknownMsg(what, key string, keys []string) string {
	if s := suggest(key, keys); s != "" {
		return fmt.Sprintf("unknown key: did you mean %s?", s)
	}
	return fmt.Sprintf("unknown key: %s has the keys %s", what, list(keys, "and"))
}

// suggest is the key nearest to a misspelt one, if near enough.
func suggest(key string, keys []string) string {
	best, dist := "", 3
	for _, k := range keys {
		if d := distance(strings.ToLower(key), k); d < dist && d < len(k)/2+1 {
			best, dist = k, d
		}
	}
	if best == "" {
		// A different separator: snapLen, snap-len.
		norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(key))
		for _, k := range keys {
			if strings.ReplaceAll(k, "_", "") == norm {
				return k
			}
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// keysOf lists the yaml tags of the struct dst points to.
func keysOf(dst any) []string {
	t := reflect.TypeOf(dst).Elem()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i], _, _ = strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
	}
	return keys
}

// list writes a, b and c.
func list(items []string, conj string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// describe names a value in a message: "a mapping", "a list", "true",
// "\"abc\"", "12".
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil:
		return "nothing"
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	case *ast.LiteralNode:
		return strconv.Quote(v.Value.Value)
	}
	return n.GetToken().Value
}

// literal is a scalar as written, else as describe has it.
func literal(n ast.Node) string {
	if s, ok := text(n); ok {
		return s
	}
	return describe(n)
}

// text is a scalar's text: a string's value, a number as written. ok is
// false for anything else (a mapping, a list, a boolean).
func text(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// str reads a string; numbers are taken as written.
func (r *reader) str(n ast.Node, path string) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := text(n)
	if !ok {
		r.fail(n, path, "want a string, not %s", describe(n))
	}
	return s, ok
}

// boolean reads true or false.
func (r *reader) boolean(n ast.Node, path string) (bool, bool) {
	if n == nil {
		return false, false
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		r.fail(n, path, "want true or false, not %s", describe(n))
		return false, false
	}
	return b.Value, true
}

// integer reads a whole number from lo to hi.
func (r *reader) integer(n ast.Node, path string, lo, hi int64) (int64, bool) {
	if n == nil {
		return 0, false
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		r.fail(n, path, "%s is not a whole number: use %d to %d", describe(n), lo, hi)
		return 0, false
	}
	var v int64
	switch x := in.Value.(type) {
	case int64:
		v = x
	case uint64:
		v = hi + 1
		if x <= uint64(hi) {
			v = int64(x)
		}
	}
	if v < lo || v > hi {
		r.fail(n, path, "%s is out of range: use %d to %d", in.GetToken().Value, lo, hi)
		return 0, false
	}
	return v, true
}

// size reads a byte count: a number of bytes, or a string with a unit
// (storage.ParseSize).
func (r *reader) size(n ast.Node, path string) (int64, bool) {
	if n == nil {
		return 0, false
	}
	s, ok := text(n)
	if !ok {
		r.fail(n, path, "want a size such as 512MiB or 50GB, not %s", describe(n))
		return 0, false
	}
	v, err := storage.ParseSize(s)
	if err != nil {
		r.failErr(n, path, err, "%v", err)
		return 0, false
	}
	return v, true
}

// duration reads a number of seconds or a duration such as 90s, 6h or
// 30d (storage.ParseDuration).
func (r *reader) duration(n ast.Node, path string) (time.Duration, bool) {
	if n == nil {
		return 0, false
	}
	s, ok := text(n)
	if !ok {
		r.fail(n, path, "want seconds or a duration such as 90s, 15m, 6h or 30d, not %s", describe(n))
		return 0, false
	}
	d, err := storage.ParseDuration(s)
	if err != nil {
		r.failErr(n, path, err, "%v", err)
		return 0, false
	}
	return d, true
}

// positiveDuration reads a duration above zero; def when absent or
// rejected.
func (r *reader) positiveDuration(n ast.Node, path string, def time.Duration) time.Duration {
	d, ok := r.duration(n, path)
	if !ok {
		return def
	}
	if d <= 0 {
		r.fail(n, path, "%s is not a positive duration: use for example 10s or 1m", literal(n))
		return def
	}
	return d
}

// space reads a percentage or a size (storage.ParseSpace).
func (r *reader) space(n ast.Node, path string) (storage.Space, bool) {
	if n == nil {
		return storage.Space{}, false
	}
	s, ok := text(n)
	if !ok {
		r.fail(n, path, "want a percentage such as 10%% or a size such as 5GB, not %s", describe(n))
		return storage.Space{}, false
	}
	v, err := storage.ParseSpace(s)
	if err != nil {
		r.failErr(n, path, err, "%v", err)
		return storage.Space{}, false
	}
	return v, true
}

// enum reads a string with parse, whose error is the message.
func enum[T any](r *reader, n ast.Node, path string, parse func(string) (T, error)) (T, bool) {
	var zero T
	s, ok := r.str(n, path)
	if !ok {
		return zero, false
	}
	v, err := parse(s)
	if err != nil {
		r.failErr(n, path, err, "%v", err)
		return zero, false
	}
	return v, true
}
