package export

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ringtap/ringtap/pkg/storage"
)

// defaultStartLayout is {start} without a layout.
const defaultStartLayout = "20060102T150405Z"

// maxKeyLen is S3's limit on an object key, in bytes.
const maxKeyLen = 1024

// KeyTemplate makes an object key from a finished file. Placeholders:
//
//	{prefix}         the destination's prefix ("" or ending in "/")
//	{host}           Config.Host
//	{iface}          the file's interfaces, joined with "+"
//	{capture}        the capture's name ("" for the CLI)
//	{start:LAYOUT}   when the file was opened, in UTC, as Go's time layout
//	                 (plain {start} is 20060102T150405Z)
//	{seq}            the file's sequence number in its recorder
//	{name}           the file's base name
//	{date}           2006/01/02 of the first packet (of {start} for a file
//	                 without packets), in UTC
//
// Empty path segments are dropped, so an empty {capture} leaves no "//".
// A value never adds a segment: "/" in {host}, {iface}, {capture} and
// {name} becomes "_". A template must hold {name} or {seq}, or every file
// would get the same key.
type KeyTemplate struct {
	src   string
	parts []tmplPart
}

type tmplPart struct {
	lit    string // literal text, when field is ""
	field  string
	layout string // for start
}

var tmplFields = map[string]bool{
	"prefix": true, "host": true, "iface": true, "capture": true,
	"start": true, "seq": true, "name": true, "date": true,
}

// ParseKeyTemplate parses a key template; see KeyTemplate.
func ParseKeyTemplate(s string) (*KeyTemplate, error) {
	bad := func(why string) (*KeyTemplate, error) {
		return nil, userErr(ErrBadTemplate, nil, fmt.Sprintf("key template %q %s", s, why))
	}
	t := &KeyTemplate{src: s}
	unique := false
	for rest := s; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if cl := strings.IndexByte(rest, '}'); cl >= 0 && (open < 0 || cl < open) {
			return bad("has a \"}\" without \"{\"")
		}
		if open < 0 {
			t.parts = append(t.parts, tmplPart{lit: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return bad("has a \"{\" without \"}\"")
		}
		inner := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		name, layout, hasLayout := strings.Cut(inner, ":")
		if !tmplFields[name] {
			return bad(fmt.Sprintf("has an unknown placeholder {%s}: use {prefix}, {host}, {iface}, {capture}, {start:LAYOUT}, {seq}, {name} or {date}", inner))
		}
		if hasLayout && name != "start" {
			return bad(fmt.Sprintf("gives a layout to {%s}; only {start:LAYOUT} takes one", name))
		}
		if name == "start" && !hasLayout {
			layout = defaultStartLayout
		}
		if name == "start" && layout == "" {
			return bad("has an empty layout in {start:}")
		}
		if name == "name" || name == "seq" {
			unique = true
		}
		t.parts = append(t.parts, tmplPart{field: name, layout: layout})
	}
	if !unique {
		return bad("has neither {name} nor {seq}, so every file would get the same key")
	}
	return t, nil
}

// String is the template's source.
func (t *KeyTemplate) String() string { return t.src }

// Key renders the key for f.
func (t *KeyTemplate) Key(prefix, host string, f storage.FinishedFile) (string, error) {
	seg := func(s string) string { return strings.ReplaceAll(s, "/", "_") }
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.lit)
		case "prefix":
			b.WriteString(prefix)
		case "host":
			b.WriteString(seg(host))
		case "iface":
			b.WriteString(seg(strings.Join(f.Interfaces, "+")))
		case "capture":
			b.WriteString(seg(f.Capture))
		case "start":
			b.WriteString(startOf(f).Format(p.layout))
		case "seq":
			b.WriteString(strconv.FormatUint(f.Seq, 10))
		case "name":
			b.WriteString(seg(filepath.Base(f.Path)))
		case "date":
			d := f.First
			if d.IsZero() {
				d = startOf(f)
			}
			b.WriteString(d.UTC().Format("2006/01/02"))
		}
	}
	segs := strings.Split(b.String(), "/")
	kept := segs[:0]
	for _, s := range segs {
		if s != "" {
			kept = append(kept, s)
		}
	}
	key := strings.Join(kept, "/")
	switch {
	case key == "":
		return "", fmt.Errorf("key template %q gives an empty key for %s", t.src, f.Path)
	case len(key) > maxKeyLen:
		return "", fmt.Errorf("key template %q gives a key of %d bytes for %s, over S3's %d", t.src, len(key), f.Path, maxKeyLen)
	case !utf8.ValidString(key):
		return "", fmt.Errorf("key template %q gives a key that is not UTF-8 for %s", t.src, f.Path)
	}
	return key, nil
}

func startOf(f storage.FinishedFile) time.Time {
	if f.Start.IsZero() {
		if !f.First.IsZero() {
			return f.First.UTC()
		}
		return time.Unix(0, 0).UTC()
	}
	return f.Start.UTC()
}
