package storage

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTemplate names the files of a directory output; the extension
// (.pcapng or .pcap, then .zst or .gz when compressed) is appended.
const DefaultTemplate = "{iface}-{start:" + defaultLayout + "}-{seq}"

// defaultLayout is the layout of a bare {start}: UTC to the nanosecond,
// so that names sort by time.
const defaultLayout = "20060102T150405.000000000Z"

// Suffixes of the files a Recorder keeps next to its captures.
const (
	tempSuffix    = ".part" // hidden temporary name: "." + name + tempSuffix
	sidecarSuffix = ".json" // time span and counts: name + sidecarSuffix
)

// tempName is the hidden temporary name of the file named rel.
func tempName(rel string) string {
	dir, base := path.Split(rel)
	return dir + "." + base + tempSuffix
}

// finalName undoes tempName; ok is false if rel is not a temporary name.
func finalName(rel string) (string, bool) {
	dir, base := path.Split(rel)
	inner, ok := strings.CutPrefix(base, ".")
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, tempSuffix)
	if !ok || inner == "" {
		return "", false
	}
	return dir + inner, true
}

// sidecarName is the name of the sidecar of the file named rel.
func sidecarName(rel string) string { return rel + sidecarSuffix }

// nameValues fill a template's placeholders.
type nameValues struct {
	iface, capture, host string
	start                time.Time
	seq                  uint64
}

// namer names a Recorder's files, relative to its root directory, with
// "/" separators.
type namer interface {
	// next names the file with sequence number seq opened at start;
	// called once per file, in order.
	next(seq uint64, start time.Time) string
	// match says whether rel is a data file name this namer produces.
	match(rel string) bool
	// reuses says whether names come round again (tcpdump-style
	// numbering), so that a recovered file needs a name of its own.
	reuses() bool
	// nested says whether names may have directories.
	nested() bool
}

// placeholder kinds of a template.
type partKind int

const (
	partLiteral partKind = iota
	partIface
	partCapture
	partHost
	partStart
	partSeq
)

type part struct {
	kind  partKind
	text  string // the literal, or the layout of {start}
	width int    // of {seq}
}

// template is a parsed name template such as DefaultTemplate.
type template struct {
	src   string
	parts []part
}

// parseTemplate parses a name template. Placeholders are {iface},
// {capture}, {host}, {start} or {start:GOLAYOUT}, and {seq} or
// {seq:WIDTH}.
func parseTemplate(s string) (*template, error) {
	t := &template{src: s}
	var lit strings.Builder
	hasSeq, hasStart := false, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '}':
			return nil, fmt.Errorf("name template %q: unbalanced } at byte %d", s, i)
		case '{':
		default:
			lit.WriteByte(s[i])
			continue
		}
		end := strings.IndexAny(s[i+1:], "{}")
		if end < 0 || s[i+1+end] != '}' {
			return nil, fmt.Errorf("name template %q: unbalanced { at byte %d", s, i)
		}
		body := s[i+1 : i+1+end]
		i += 1 + end
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{kind: partLiteral, text: lit.String()})
			lit.Reset()
		}
		name, arg, hasArg := strings.Cut(body, ":")
		p := part{}
		switch name {
		case "iface":
			p.kind = partIface
		case "capture":
			p.kind = partCapture
		case "host":
			p.kind = partHost
		case "start":
			p.kind, p.text = partStart, defaultLayout
			if hasArg {
				if arg == "" {
					return nil, fmt.Errorf("name template %q: {start:} needs a Go time layout such as %s", s, defaultLayout)
				}
				p.text = arg
			}
			hasStart = true
			hasArg = false
		case "seq":
			p.kind = partSeq
			if hasArg {
				w, err := strconv.Atoi(arg)
				if err != nil || w < 1 || w > 20 {
					return nil, fmt.Errorf("name template %q: {seq:%s} needs a width from 1 to 20", s, arg)
				}
				p.width = w
			}
			hasSeq = true
			hasArg = false
		default:
			return nil, fmt.Errorf("name template %q: unknown placeholder {%s}: use {iface}, {capture}, {host}, {start:LAYOUT} or {seq:WIDTH}", s, body)
		}
		if hasArg {
			return nil, fmt.Errorf("name template %q: {%s} takes no argument", s, name)
		}
		t.parts = append(t.parts, p)
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{kind: partLiteral, text: lit.String()})
	}
	if !hasSeq && !hasStart {
		return nil, fmt.Errorf("name template %q names every file the same: add {seq} or {start}", s)
	}
	return t, nil
}

// sanitize makes a placeholder value safe inside a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// expand fills the template.
func (t *template) expand(v nameValues) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			b.WriteString(p.text)
		case partIface:
			b.WriteString(sanitize(v.iface))
		case partCapture:
			b.WriteString(sanitize(v.capture))
		case partHost:
			b.WriteString(sanitize(v.host))
		case partStart:
			b.WriteString(v.start.UTC().Format(p.text))
		case partSeq:
			fmt.Fprintf(&b, "%0*d", p.width, v.seq)
		}
	}
	return b.String()
}

// checkName checks that rel, a name made by a template, stays inside the
// output directory and is neither hidden (hidden names are temporary
// files) nor one of the names kept next to captures.
func checkName(src, rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.ContainsRune(rel, 0) {
		return fmt.Errorf("name template %q gives %q, which is not a file name inside the output directory", src, rel)
	}
	for c := range strings.SplitSeq(rel, "/") {
		switch {
		case c == "":
			return fmt.Errorf("name template %q gives %q, with an empty path element", src, rel)
		case c == "." || c == "..":
			return fmt.Errorf("name template %q gives %q: a / that escapes the output directory", src, rel)
		case strings.HasPrefix(c, "."):
			return fmt.Errorf("name template %q gives %q: names starting with a dot are reserved for files being written", src, rel)
		}
	}
	if strings.HasSuffix(rel, sidecarSuffix) || strings.HasSuffix(rel, tempSuffix) {
		return fmt.Errorf("name template %q gives %q: names ending in %s or %s are reserved", src, rel, sidecarSuffix, tempSuffix)
	}
	return nil
}

// dirNamer names files by a template in a directory.
type dirNamer struct {
	t      *template
	ext    string // appended when the template lacks it
	vals   nameValues
	re     *regexp.Regexp
	starts []string // layouts of the {start} groups, in order
	hasDir bool
}

// newDirNamer checks the template with the recorder's own values: the
// names it gives must stay inside the directory.
func newDirNamer(t *template, ext string, vals nameValues) (*dirNamer, error) {
	n := &dirNamer{t: t, ext: ext, vals: vals}
	// Two sample times, to catch a layout that puts a / or a dot first
	// in some element only for some times.
	for _, sample := range []time.Time{time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2001, 1, 2, 3, 4, 5, 6, time.UTC)} {
		v := vals
		v.start, v.seq = sample, 12345
		rel := n.name(v)
		if err := checkName(t.src, rel); err != nil {
			return nil, err
		}
		if strings.Contains(rel, "/") {
			n.hasDir = true
		}
	}
	var re strings.Builder
	re.WriteString("^")
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			re.WriteString(regexp.QuoteMeta(p.text))
		case partIface:
			re.WriteString(regexp.QuoteMeta(sanitize(vals.iface)))
		case partCapture:
			re.WriteString(regexp.QuoteMeta(sanitize(vals.capture)))
		case partHost:
			re.WriteString(regexp.QuoteMeta(sanitize(vals.host)))
		case partStart:
			re.WriteString("(.+?)")
			n.starts = append(n.starts, p.text)
		case partSeq:
			if p.width > 0 {
				fmt.Fprintf(&re, "[0-9]{%d,}", p.width)
			} else {
				re.WriteString("[0-9]+")
			}
		}
	}
	if !strings.HasSuffix(t.src, ext) {
		re.WriteString(regexp.QuoteMeta(ext))
	}
	re.WriteString("$")
	var err error
	if n.re, err = regexp.Compile(re.String()); err != nil {
		return nil, fmt.Errorf("name template %q: %w", t.src, err)
	}
	return n, nil
}

func (n *dirNamer) name(v nameValues) string {
	s := n.t.expand(v)
	if !strings.HasSuffix(s, n.ext) {
		s += n.ext
	}
	return s
}

func (n *dirNamer) next(seq uint64, start time.Time) string {
	v := n.vals
	v.seq, v.start = seq, start
	return n.name(v)
}

// match accepts a name when the regular expression built from the
// template matches and every {start} in it is a time that its layout
// formats back to the same text.
func (n *dirNamer) match(rel string) bool {
	m := n.re.FindStringSubmatch(rel)
	if m == nil {
		return false
	}
	for i, layout := range n.starts {
		t, err := time.Parse(layout, m[i+1])
		if err != nil || t.UTC().Format(layout) != m[i+1] {
			return false
		}
	}
	return true
}

func (n *dirNamer) reuses() bool { return false }
func (n *dirNamer) nested() bool { return n.hasDir }

// fileNamer numbers files as tcpdump does with -w FILE and -C or -G:
// FILE, FILE1, FILE2, ... without -W; FILE0 ... FILE(W-1), zero-padded
// to the digits of W-1 and coming round again, with -W. With -G, strftime
// conversions in FILE are expanded (in UTC) at each file's start, and a
// number is added only when an expanded name repeats.
type fileNamer struct {
	base     string // the file name, without its directory
	strftime *strftimeFormat
	rotates  bool
	ring     int
	width    int
	lastBase string
	n        int // files since the expanded base last changed
	re       *regexp.Regexp
}

func newFileNamer(base string, rotates, timeRotation bool, ring int) (*fileNamer, error) {
	n := &fileNamer{base: base, rotates: rotates, ring: ring}
	if ring > 0 {
		for x := ring - 1; x > 0; x /= 10 {
			n.width++
		}
	}
	baseRe := regexp.QuoteMeta(base)
	if timeRotation && strings.Contains(base, "%") {
		f, err := parseStrftime(base)
		if err != nil {
			return nil, err
		}
		n.strftime = f
		baseRe = f.regexp()
	}
	digits := "[0-9]*"
	if !rotates {
		digits = ""
	}
	n.re = regexp.MustCompile("^" + baseRe + digits + "$")
	return n, nil
}

func (n *fileNamer) next(seq uint64, start time.Time) string {
	if !n.rotates {
		return n.base
	}
	b := n.base
	if n.strftime != nil {
		b = n.strftime.format(start.UTC())
	}
	if b != n.lastBase || seq == 0 {
		n.lastBase, n.n = b, 0
	} else {
		n.n++
	}
	k := n.n
	if n.ring > 0 {
		k %= n.ring
	}
	if n.width == 0 && k == 0 {
		return b
	}
	return b + fmt.Sprintf("%0*d", n.width, k)
}

func (n *fileNamer) match(rel string) bool {
	return !strings.Contains(rel, "/") && n.re.MatchString(rel)
}

func (n *fileNamer) reuses() bool { return true }
func (n *fileNamer) nested() bool { return false }

// recoveredName is the name a recovered file takes when its own is taken
// or will be reused: ".recovered" (and a number when that is taken too)
// goes before the capture extensions, so that tools still know the file.
func recoveredName(rel string, taken func(string) bool) string {
	dir, base := path.Split(rel)
	stem, ext := splitCaptureExt(base)
	for i := 1; ; i++ {
		mark := ".recovered"
		if i > 1 {
			mark += strconv.Itoa(i)
		}
		cand := dir + stem + mark + ext
		if !taken(cand) {
			return cand
		}
	}
}

var captureExt = regexp.MustCompile(`(\.pcapng|\.pcap)[0-9]*(\.zst|\.gz)?$|(\.zst|\.gz)$`)

// splitCaptureExt splits "x.pcapng.zst" into "x" and ".pcapng.zst".
func splitCaptureExt(base string) (stem, ext string) {
	if loc := captureExt.FindStringIndex(base); loc != nil && loc[0] > 0 {
		return base[:loc[0]], base[loc[0]:]
	}
	return base, ""
}
