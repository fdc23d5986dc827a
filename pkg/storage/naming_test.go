package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

func TestTemplateNames(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 20, 30, 123456789, time.UTC)
	vals := nameValues{iface: "eth0+eth1", capture: "web/frontend", host: "sensor1"}
	for _, tc := range []struct {
		template, ext string
		seq           uint64
		want          string
	}{
		{DefaultTemplate, ".pcapng", 7, "eth0+eth1-20261201T102030.123456789Z-7.pcapng"},
		{DefaultTemplate, ".pcap.zst", 0, "eth0+eth1-20261201T102030.123456789Z-0.pcap.zst"},
		{"{host}-{capture}-{seq:6}.pcapng", ".gz", 42, "sensor1-web_frontend-000042.pcapng.gz"},
		{"{start:2006/01/02}/{iface}-{start:150405}-{seq}.pcapng", "", 3, "2026/12/01/eth0+eth1-102030-3.pcapng"},
		{"cap-{start}.pcapng", ".zst", 1, "cap-20261201T102030.123456789Z.pcapng.zst"},
		{"already-{seq}.pcapng.zst", ".zst", 1, "already-1.pcapng.zst"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			tm, err := parseTemplate(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			n, err := newDirNamer(tm, tc.ext, vals)
			if err != nil {
				t.Fatal(err)
			}
			got := n.next(tc.seq, start)
			if got != tc.want {
				t.Fatalf("name %q, want %q", got, tc.want)
			}
			if !n.match(got) {
				t.Errorf("the namer does not recognise its own name %q", got)
			}
			others := []string{"x" + got, got + ".json", tempName(got), "notes.txt"}
			if strings.Contains(got, "eth0") {
				others = append(others, strings.Replace(got, "eth0", "eth9", 1))
			}
			for _, other := range others {
				if n.match(other) {
					t.Errorf("the namer claims %q, which it would not produce", other)
				}
			}
		})
	}
}

func TestTemplateMatchChecksTimes(t *testing.T) {
	tm, err := parseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	n, err := newDirNamer(tm, ".pcapng", nameValues{iface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"eth0-20261201T102030.123456789Z-7.pcapng":   true,
		"eth0-20261301T102030.123456789Z-7.pcapng":   false, // month 13
		"eth0-20261201T102030.1234Z-7.pcapng":        false, // not the layout
		"eth0-20261201T102030.123456789Z-x.pcapng":   false,
		"eth0-20261201T102030.123456789Z-7.pcapng.1": false,
		"eth0-backup-7.pcapng":                       false,
	} {
		if got := n.match(name); got != want {
			t.Errorf("match(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ template, want string }{
		{"{iface}-{seq", "unbalanced {"},
		{"{iface}}-{seq}", "unbalanced }"},
		{"{iface}-{when}-{seq}", "unknown placeholder {when}"},
		{"{iface}-{seq:0}", "width from 1 to 20"},
		{"{iface}-{seq:abc}", "width from 1 to 20"},
		{"{iface:x}-{seq}", "takes no argument"},
		{"{start:}-{seq}", "needs a Go time layout"},
		{"{iface}.pcapng", "names every file the same"},
		{"../{iface}-{seq}", "escapes the output directory"},
		{"a/../../{seq}", "escapes the output directory"},
		{"/abs/{seq}", "not a file name inside the output directory"},
		{".{seq}", "reserved for files being written"},
		{"x//{seq}", "empty path element"},
		{"{seq}.json", "reserved"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			o := Options{Dir: t.TempDir(), Template: tc.template}
			err := o.Validate()
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFileNamer(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 20, 30, 0, time.UTC)
	for _, tc := range []struct {
		name          string
		base          string
		rotates, time bool
		ring          int
		starts        []time.Duration // offsets of the files' starts
		want          []string
	}{
		{"no rotation", "x.pcapng", false, false, 0, []time.Duration{0}, []string{"x.pcapng"}},
		{"-C", "x.pcap", true, false, 0, []time.Duration{0, 0, 0}, []string{"x.pcap", "x.pcap1", "x.pcap2"}},
		{"-C -W 3", "x.pcap", true, false, 3, []time.Duration{0, 0, 0, 0}, []string{"x.pcap0", "x.pcap1", "x.pcap2", "x.pcap0"}},
		{"-C -W 12", "x", true, false, 12, []time.Duration{0, 0}, []string{"x00", "x01"}},
		{"-G strftime", "d-%Y%m%d-%H%M%S.pcap", true, true, 0, []time.Duration{0, time.Hour}, []string{"d-20261201-102030.pcap", "d-20261201-112030.pcap"}},
		{"-G strftime repeats", "d-%F.pcap", true, true, 0, []time.Duration{0, time.Hour, 24 * time.Hour}, []string{"d-2026-12-01.pcap", "d-2026-12-01.pcap1", "d-2026-12-02.pcap"}},
		{"-G without conversions", "x.pcap", true, true, 0, []time.Duration{0, time.Hour}, []string{"x.pcap", "x.pcap1"}},
		{"-G %s %%", "%s-100%%.pcap", true, true, 0, []time.Duration{0}, []string{"1796120430-100%.pcap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newFileNamer(tc.base, tc.rotates, tc.time, tc.ring)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, d := range tc.starts {
				name := n.next(uint64(i), start.Add(d))
				got = append(got, name)
				if !n.match(name) {
					t.Errorf("the namer does not recognise %q", name)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if n.match("other.pcap") || n.match(tempName(got[0])) {
				t.Errorf("the namer claims names it does not produce")
			}
		})
	}
	if _, err := newFileNamer("x-%Q.pcap", true, true, 0); err == nil || !strings.Contains(err.Error(), "%Q is not supported") {
		t.Errorf("unknown conversion: %v", err)
	}
}

func TestRecoveredName(t *testing.T) {
	taken := map[string]bool{"a.recovered.pcapng": true}
	for in, want := range map[string]string{
		"ringtap.pcapng":                  "ringtap.recovered.pcapng",
		"x.pcap3":                         "x.recovered.pcap3",
		"eth0-20261201T1.5Z-3.pcapng.zst": "eth0-20261201T1.5Z-3.recovered.pcapng.zst",
		"sub/dump.gz":                     "sub/dump.recovered.gz",
		"plain":                           "plain.recovered",
		"a.pcapng":                        "a.recovered2.pcapng",
	} {
		if got := recoveredName(in, func(s string) bool { return taken[s] }); got != want {
			t.Errorf("recoveredName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want error
		msg  string
	}{
		{"ok dir", Options{Dir: dir}, nil, ""},
		{"ok new dir", Options{Dir: filepath.Join(dir, "a", "b")}, nil, ""},
		{"ok file", Options{File: filepath.Join(dir, "x.pcapng"), FileSize: 1e6, FileCount: 5}, nil, ""},
		{"neither", Options{}, ErrInvalid, "either an output directory or a file"},
		{"both", Options{Dir: dir, File: "x"}, ErrInvalid, "either"},
		{"count alone", Options{Dir: dir, FileCount: 3}, ErrInvalid, "needs rotation by size (-C) or time (-G)"},
		{"tiny size", Options{Dir: dir, FileSize: 100}, ErrInvalid, "below 4096"},
		{"negative age", Options{Dir: dir, FileAge: -time.Second}, ErrInvalid, "negative"},
		{"zstd level", Options{Dir: dir, Compression: CompressZstd, CompressionLevel: 30}, ErrInvalid, "zstd level 30"},
		{"gzip level", Options{Dir: dir, Compression: CompressGzip, CompressionLevel: 10}, ErrInvalid, "gzip level 10"},
		{"level alone", Options{Dir: dir, CompressionLevel: 3}, ErrInvalid, "needs a compression"},
		{"frame size", Options{Dir: dir, Compression: CompressZstd, FrameSize: 1000}, ErrInvalid, "frame size"},
		{"retention bytes", Options{Dir: dir, MaxBytes: -1}, ErrInvalid, "negative"},
		{"min free", Options{Dir: dir, MinFree: Space{Percent: 120}}, ErrInvalid, "out of range"},
		{"postrotate", Options{Dir: dir, Postrotate: "no-such-command-here"}, ErrInvalid, "postrotate command"},
		{"file's directory missing", Options{File: filepath.Join(dir, "nope", "x.pcapng")}, ErrUnwritable, "does not exist"},
		{"dir is a file", Options{Dir: file}, ErrUnwritable, "not a directory"},
		{"under a file", Options{Dir: filepath.Join(file, "x")}, ErrUnwritable, "not a directory"},
		{"bad strftime", Options{File: filepath.Join(dir, "x-%Q"), FileAge: time.Hour}, ErrInvalid, "%Q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Validate() = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Validate created something: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		if err := (&Options{Dir: ro}).Validate(); !errors.Is(err, ErrUnwritable) {
			t.Errorf("read-only directory: %v", err)
		}
	}
}

func TestNewRecorderErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewRecorder(Options{Dir: dir}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no interfaces: %v", err)
	}
	two := []pcapio.Interface{{Name: "a", LinkType: 1}, {Name: "b", LinkType: 101}}
	if _, err := NewRecorder(Options{Dir: dir, Format: pcapio.FormatPCAP, Interfaces: two}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "use pcapng") {
		t.Errorf("pcap with two link types: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed NewRecorder left %v", ents)
	}
}
