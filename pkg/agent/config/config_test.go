package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/storage"
)

const testdata = "../../../testdata/agent"

// testCPUs makes the memory estimate independent of the machine.
const testCPUs = 4

// mustParse parses a config that must be valid.
func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), "agent.yaml", WithCPUs(testCPUs))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// messages is each line of err, nil for none.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// badCases are the files of testdata/agent/bad and their messages.
var badCases = []struct {
	file string
	want []string
}{
	{"unknown-top.yaml", []string{
		`unknown-top.yaml:5:1: log_level: unknown key: the agent's config has the keys captures, http, rings, memory_budget, export, jobs, shutdown_hook, shutdown_hook_timeout and stop_timeout`,
	}},
	{"unknown-nested.yaml", []string{
		`unknown-nested.yaml:4:5: captures[0].snaplenn: unknown key: did you mean snaplen?`,
		`unknown-nested.yaml:8:9: captures[0].output.retention.maxbytes: unknown key: did you mean max_bytes?`,
	}},
	{"wrong-type.yaml", []string{
		`wrong-type.yaml:4:14: captures[0].snaplen: "abc" is not a whole number: use 1 to 262144`,
		`wrong-type.yaml:5:19: captures[0].monitor_port: want true or false, not "yes"`,
		`wrong-type.yaml:6:13: captures[0].output: want an output, a mapping with keys such as dir and template, not "/var/lib/ringtap/web"`,
	}},
	{"bad-filter.yaml", []string{
		`bad-filter.yaml:4:13: captures[0].filter: compile filter "tcp prot 443": can't parse filter expression: syntax error: fix the expression (tcpdump syntax, see pcap-filter(7)), or leave it empty to capture everything`,
	}},
	{"duplicate-name.yaml", []string{
		`duplicate-name.yaml:5:11: captures[1].name: "web" is already the name of captures[0] "web" (line 2): give each capture its own name`,
	}},
	{"bad-size.yaml", []string{
		`bad-size.yaml:6:9: rings.size: size "12XB": want a number of bytes with an optional unit such as KB, MB, GB, KiB, MiB or GiB`,
	}},
	{"snaplen-range.yaml", []string{
		`snaplen-range.yaml:7:14: captures[1].snaplen: 300000 is out of range: use 1 to 262144`,
	}},
	{"xdp-inout.yaml", []string{
		`xdp-inout.yaml:5:16: captures[0].direction: inout needs hook tc (or auto): XDP sees received frames only, so use direction in or hook tc`,
	}},
	{"monitor-conflict.yaml", []string{
		`monitor-conflict.yaml:6:5: captures[1].monitor_port: is false here but true in captures[0] "span" (line 2) on the same interface eth2: monitor_port applies to the whole interface, so set it alike on every capture of eth2`,
	}},
	{"duplicate-dir.yaml", []string{
		`duplicate-dir.yaml:9:12: captures[1].output.dir: /var/lib/ringtap/web is also the directory of captures[0] "web" (line 2): their files would collide, so give each capture its own directory`,
	}},
	{"ring-too-small.yaml", []string{
		fmt.Sprintf(`ring-too-small.yaml:7:9: rings.size: 16KiB cannot hold two records of snaplen 9000 (%d bytes each) of captures[0] "jumbo" (line 2) on eth0: use a size of at least 32KiB, or a smaller snaplen`,
			capture.RecordSize(9000)),
	}},
	{"budget.yaml", []string{
		`budget.yaml:3:16: memory_budget: the config needs about 144MiB (rings: 8MiB × 4 CPUs × 3 interfaces; write queues: 48MiB for 3 captures), more than the budget of 32MiB: use smaller rings.size, fewer interfaces or captures, or raise memory_budget`,
	}},
	{"missing-interface.yaml", []string{
		`missing-interface.yaml:2:5: captures[0].interface: missing: give the network interface to capture on, such as interface: eth0`,
	}},
	{"syntax.yaml", []string{
		`syntax.yaml:3:16: invalid YAML (sequence end token ']' not found): fix the syntax here`,
	}},
	{"duplicate-key.yaml", []string{
		`duplicate-key.yaml:4:5: mapping key "interface" already defined at [3:5]: remove one of the two`,
	}},
	{"empty.yaml", []string{
		`empty.yaml:1: captures: the file has no captures: add a captures list with at least one capture`,
	}},
	{"invalid-names.yaml", []string{
		`invalid-names.yaml:2:11: captures[0].name: "Web" is not a valid capture name: use 1 to 63 lowercase letters, digits, "_", "." or "-", beginning with a letter or digit`,
		`invalid-names.yaml:3:16: captures[0].interface: "eth0/1" is not a Linux interface name, which cannot hold "/", ":" or spaces: give one such as eth0`,
		`invalid-names.yaml:4:19: captures[0].output.dir: "captures/web" is not an absolute path: write it from /, such as /var/lib/ringtap/NAME`,
	}},
	{"captures-mapping.yaml", []string{
		`captures-mapping.yaml:2:3: captures: want a list of captures (lines beginning with "- name:"), not a mapping`,
	}},
}

func TestBadFiles(t *testing.T) {
	for _, tc := range badCases {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			if tc.file == "bad-filter.yaml" && runtime.GOOS != "linux" {
				t.Skip("filters are compiled on Linux only")
			}
			data, err := os.ReadFile(filepath.Join(testdata, "bad", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data, tc.file, WithCPUs(testCPUs))
			if c != nil {
				t.Errorf("Parse returned a config with the error %v", err)
			}
			if diff := cmp.Diff(tc.want, messages(err)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			var e *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &e) || e.Line == 0 {
				t.Errorf("error %v: want an *Error with a line that is ErrInvalid", err)
			}
		})
	}
}

// TestBadFilesListed keeps badCases and testdata/agent/bad alike.
func TestBadFilesListed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "bad", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, f := range files {
		got = append(got, filepath.Base(f))
	}
	for _, tc := range badCases {
		want = append(want, tc.file)
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("files of testdata/agent/bad (-badCases +files):\n%s", diff)
	}
}

func TestLoadNamesPath(t *testing.T) {
	path := filepath.Join(testdata, "bad", "snaplen-range.yaml")
	_, err := Load(path)
	want := path + ":7:14: captures[1].snaplen: 300000 is out of range: use 1 to 262144"
	if err == nil || err.Error() != want {
		t.Errorf("Load: %v, want %s", err, want)
	}
	if _, err := Load(filepath.Join(testdata, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestExample(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "example.yaml"), WithCPUs(testCPUs))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		Captures: []Capture{{
			Name:      "web",
			Interface: "eth0",
			Filter:    "tcp port 443",
			SnapLen:   256,
			Hook:      capture.HookAuto,
			Direction: capture.DirIn,
			Output: Output{
				Dir:           "/var/lib/ringtap/web",
				Template:      "{capture}-{start}-{seq}.pcapng",
				Format:        pcapio.FormatPCAPNG,
				Rotate:        Rotate{Size: 512e6, Age: 5 * time.Minute, Keep: 100},
				Compress:      storage.CompressZstd,
				CompressLevel: 3,
				FrameSize:     1 << 20,
				Retention:     Retention{MaxBytes: 50e9, MaxAge: 168 * time.Hour, MinFree: storage.Space{Percent: 10}},
				Export:        OutputExport{URL: "s3://captures/ringtap/", DeleteAfterUpload: true},
			},
			Line: 14,
		}, {
			Name:      "dns",
			Interface: "eth1",
			Filter:    "udp port 53 or tcp port 53",
			SnapLen:   1500,
			Hook:      capture.HookTC,
			Direction: capture.DirInOut,
			Output: Output{
				Dir:               "/var/lib/ringtap/dns",
				Format:            pcapio.FormatPCAP,
				Rotate:            Rotate{Age: time.Hour},
				Postrotate:        "/usr/local/bin/ringtap-index",
				PostrotateTimeout: 2 * time.Minute,
			},
			Line: 42,
		}},
		HTTP:         HTTP{Listen: "127.0.0.1:9273"},
		Rings:        Rings{Size: 8 << 20},
		MemoryBudget: 1 << 30,
		Export: &Export{
			Endpoint:     "https://minio.example:9000",
			Region:       "us-east-1",
			Addressing:   export.AddressingAuto,
			CAFile:       "/etc/ringtap/minio-ca.pem",
			Checksum:     export.ChecksumMD5,
			Encryption:   export.EncryptionNone,
			KeyTemplate:  export.DefaultKeyTemplate,
			PartSize:     16 << 20,
			Concurrency:  1,
			Spool:        "/var/lib/ringtap/spool",
			StallTimeout: 2 * time.Minute,
			UploadGrace:  30 * time.Second,
		},
		Jobs:                Jobs{MaxConcurrent: 2, Dir: "/var/lib/ringtap/jobs", MaxBytes: 2 << 30, MinFree: storage.Space{Percent: 5}},
		ShutdownHook:        "/usr/local/bin/on-ringtap-stop",
		ShutdownHookTimeout: 10 * time.Second,
		StopTimeout:         30 * time.Second,
		Source:              filepath.Join(testdata, "example.yaml"),
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("example.yaml (-want +got):\n%s", diff)
	}
	// 2 interfaces × 4 CPUs × 8 MiB + 2 write queues of 16 MiB.
	if got, want := c.MemoryEstimate(testCPUs), int64(96<<20); got != want {
		t.Errorf("MemoryEstimate = %d, want %d", got, want)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "captures:\n  - {name: web, interface: eth0, output: {dir: /srv/web}}\n")
	want := &Config{
		Captures: []Capture{{Name: "web", Interface: "eth0", SnapLen: capture.DefaultSnapLen,
			Hook: capture.HookAuto, Direction: capture.DirIn, Output: Output{Dir: "/srv/web"}, Line: 2}},
		HTTP:                HTTP{Listen: DefaultListen},
		Rings:               Rings{Size: DefaultRingSize},
		Jobs:                Jobs{MaxConcurrent: 2, MaxBytes: 2 << 30, MinFree: storage.Space{Percent: 5}},
		ShutdownHookTimeout: DefaultShutdownHookTimeout,
		StopTimeout:         DefaultStopTimeout,
		Source:              "agent.yaml",
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	c = mustParse(t, "captures:\n  - {name: web, interface: eth0, output: {dir: /srv/web, export: {url: 's3://bkt/'}}}\nexport: {}\n")
	wantExport := &Export{Addressing: export.AddressingAuto, KeyTemplate: export.DefaultKeyTemplate,
		PartSize: export.DefaultPartSize, Concurrency: export.DefaultConcurrency, Spool: export.DefaultSpool,
		StallTimeout: export.DefaultStallTimeout, UploadGrace: DefaultUploadGrace}
	if diff := cmp.Diff(wantExport, c.Export); diff != "" {
		t.Errorf("export defaults (-want +got):\n%s", diff)
	}
}

// TestValues covers value rules that the bad files do not, one message
// each.
func TestValues(t *testing.T) {
	const head = "captures:\n  - name: web\n    interface: eth0\n"
	tests := []struct {
		name, src, want string
	}{
		{"live-only filter", head + "    filter: inbound\n    output: {dir: /d}\n",
			`agent.yaml:4:13: captures[0].filter: compile filter "inbound": the expression needs metadata that only a live Linux socket has (inbound, outbound, ifindex, ...), which XDP and TC programs cannot read (instruction 0 reads the socket's pkttype): select frames by their content, and by direction with direction: in or out`},
		{"snaplen zero", head + "    snaplen: 0\n    output: {dir: /d}\n",
			"agent.yaml:4:14: captures[0].snaplen: 0 is out of range: use 1 to 262144"},
		{"unknown hook", head + "    hook: xpd\n    output: {dir: /d}\n",
			`agent.yaml:4:11: captures[0].hook: unknown hook "xpd": use auto, xdp or tc`},
		{"monitor port out", head + "    direction: out\n    monitor_port: true\n    output: {dir: /d}\n",
			"agent.yaml:5:19: captures[0].monitor_port: monitor_port drops the received frames, so it needs direction in (this capture has out)"},
		{"keep without rotation", head + "    output: {dir: /d, rotate: {keep: 3}}\n",
			"agent.yaml:4:38: captures[0].output.rotate.keep: keep needs rotation by size_mb or seconds: it keeps a ring of rotated files"},
		{"bad duration", head + "    output: {dir: /d, retention: {max_age: 3 weeks}}\n",
			`agent.yaml:4:44: captures[0].output.retention.max_age: duration "3 weeks": want seconds, or a duration such as 90s, 15m, 6h or 30d`},
		{"bad min_free", head + "    output: {dir: /d, retention: {min_free: 100%}}\n",
			`agent.yaml:4:45: captures[0].output.retention.min_free: space "100%": a percentage must be above 0 and below 100`},
		{"compression", head + "    output: {dir: /d, compress: lz4}\n",
			`agent.yaml:4:33: captures[0].output.compress: unknown compression "lz4": use zstd, gzip or none`},
		{"gzip level", head + "    output: {dir: /d, compress: gzip, compress_level: 12}\n",
			"agent.yaml:4:55: captures[0].output.compress_level: 12 is out of range for gzip: use 1 to 9"},
		{"template", head + "    output: {dir: /d, template: '{nope}'}\n",
			`agent.yaml:4:33: captures[0].output.template: name template "{nope}": unknown placeholder {nope}: use {iface}, {capture}, {host}, {start:LAYOUT} or {seq:WIDTH}`},
		{"ring not a power of two", head + "    output: {dir: /d}\nrings: {size: 3MiB}\n",
			"agent.yaml:5:15: rings.size: 3MiB is not a power of two from 16KiB to 1GiB: use for example 4MiB or 8MiB"},
		{"listen", head + "    output: {dir: /d}\nhttp: {listen: 9273}\n",
			`agent.yaml:5:16: http.listen: "9273" is not a host:port address: write for example 127.0.0.1:9273 or [::1]:9273`},
		{"stop timeout", head + "    output: {dir: /d}\nstop_timeout: 0\n",
			"agent.yaml:5:15: stop_timeout: 0 is not a positive duration: use for example 10s or 1m"},
		{"export url", head + "    output: {dir: /d, export: {url: 'http://b/'}}\nexport: {}\n",
			`agent.yaml:4:37: captures[0].output.export.url: export URL "http://b/" is not an s3:// URL: write s3://bucket/prefix/`},
		{"sse-kms without key", head + "    output: {dir: /d}\nexport: {sse: sse-kms}\n",
			"agent.yaml:5:15: export.sse: sse-kms needs a KMS key id: add kms_key"},
		{"md5 with sse-c", head + "    output: {dir: /d}\nexport: {endpoint: 'https://s3.example', sse: sse-c, ssec_key: /etc/k, checksum: md5}\n",
			"agent.yaml:5:82: export.checksum: md5 cannot be verified with sse-c (the ETag is not the MD5 of the content then): use crc32c or sha256"},
		{"part size", head + "    output: {dir: /d}\nexport: {part_size: 1MiB}\n",
			"agent.yaml:5:21: export.part_size: 1MiB is out of S3's range: use 5MiB to 5GiB"},
		{"shared url without capture in keys", "captures:\n" +
			"  - {name: a, interface: eth0, output: {dir: /a, export: {url: 's3://bkt/p/'}}}\n" +
			"  - {name: b, interface: eth0, output: {dir: /b, export: {url: 's3://bkt/p/'}}}\n" +
			"export: {key_template: '{prefix}{name}'}\n",
			`agent.yaml:3:64: captures[1].output.export.url: s3://bkt/p/ is also the destination of captures[0] "a" (line 2), and export.key_template has no {capture}: their objects would collide, so add {capture} to the template or give each capture its own prefix`},
		{"unknown key suggestion by separator", head + "    monitorPort: true\n    output: {dir: /d}\n",
			"agent.yaml:4:5: captures[0].monitorPort: unknown key: did you mean monitor_port?"},
		{"second document", head + "    output: {dir: /d}\n---\ncaptures: []\n",
			"agent.yaml:6:1: a second YAML document begins here: an agent's config is one document, so remove the ---"},
		{"empty capture list", "captures: []\n",
			"agent.yaml:1:11: captures: the list is empty: add at least one capture"},
		{"missing output", head,
			"agent.yaml:2:5: captures[0].output.dir: missing: give the directory of the capture's files, such as output: {dir: /var/lib/ringtap/web}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasSuffix(tc.name, "filter") && runtime.GOOS != "linux" {
				t.Skip("filters are compiled on Linux only")
			}
			_, err := Parse([]byte(tc.src), "agent.yaml", WithCPUs(testCPUs))
			if diff := cmp.Diff([]string{tc.want}, messages(err)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTooManyCapturesPerInterface(t *testing.T) {
	var b strings.Builder
	b.WriteString("captures:\n")
	for i := range MaxCapturesPerInterface + 1 {
		fmt.Fprintf(&b, "  - {name: c%d, interface: eth0, output: {dir: /d/%d}}\n", i, i)
	}
	_, err := Parse([]byte(b.String()), "agent.yaml", WithCPUs(testCPUs))
	want := []string{"agent.yaml:66:28: captures[64].interface: eth0 already has 64 captures, the most one interface can have: remove or merge captures on eth0"}
	if diff := cmp.Diff(want, messages(err)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

// TestAnchors: captures can merge shared settings from x- keys, and a
// capture can be an alias.
func TestAnchors(t *testing.T) {
	c := mustParse(t, `x-base: &base
  interface: eth0
  snaplen: 128
captures:
  - <<: *base
    name: a
    output: {dir: /a}
`)
	if got := c.Captures[0]; got.Interface != "eth0" || got.SnapLen != 128 || got.Line != 5 {
		t.Errorf("merged capture = %+v, want interface eth0, snaplen 128, line 5", got)
	}
	_, err := Parse([]byte("x-base: &base\n  snaplen: 99999999\ncaptures:\n  - <<: *base\n    name: a\n    interface: eth0\n    output: {dir: /a}\n"), "agent.yaml")
	want := []string{"agent.yaml:2:12: captures[0].snaplen: 99999999 is out of range: use 1 to 262144"}
	if diff := cmp.Diff(want, messages(err)); diff != "" {
		t.Errorf("merged value's message (-want +got):\n%s", diff)
	}
}

func TestStorageOptions(t *testing.T) {
	dir := t.TempDir()
	c := mustParse(t, fmt.Sprintf(`captures:
  - name: web
    interface: eth0
    output:
      dir: %s/web
      format: pcap
      rotate: {size_mb: 1.5, seconds: 60, keep: 10}
      compress: gzip
      compress_level: 9
      frame_size: 256KiB
      retention: {max_bytes: 1GiB, max_age: 2d, min_free: 5GB}
`, dir))
	got, err := c.Captures[0].StorageOptions()
	if err != nil {
		t.Fatalf("StorageOptions: %v", err)
	}
	want := storage.Options{
		Dir: dir + "/web", Format: pcapio.FormatPCAP, Capture: "web",
		FileSize: 1.5e6, FileAge: time.Minute, FileCount: 10,
		Compression: storage.CompressGzip, CompressionLevel: 9, FrameSize: 256 << 10,
		MaxBytes: 1 << 30, MaxAge: 48 * time.Hour, MinFree: storage.Space{Bytes: 5e9},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(storage.Options{})); diff != "" {
		t.Errorf("StorageOptions (-want +got):\n%s", diff)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, fmt.Sprintf(`captures:
  - name: web
    interface: eth0
    output: {dir: %s/ok}
  - name: dns
    interface: eth0
    output:
      dir: %s
  - name: ntp
    interface: eth0
    output:
      dir: %s/ntp
      postrotate: /nonexistent/index
shutdown_hook: /nonexistent/hook
`, dir, file, dir))
	err := c.Check()
	want := []string{
		fmt.Sprintf("agent.yaml:8:12: captures[1].output.dir: cannot write the output directory: %s is not a directory: create it, let the agent's user write it, or choose another directory", file),
		`agent.yaml:13:19: captures[2].output.postrotate: postrotate command "/nonexistent/index": exec: "/nonexistent/index": stat /nonexistent/index: no such file or directory: install it or fix the path`,
		`agent.yaml:14:16: shutdown_hook: exec: "/nonexistent/hook": stat /nonexistent/hook: no such file or directory: install it or fix the path`,
	}
	if diff := cmp.Diff(want, messages(err)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
	if _, err := c.Captures[1].StorageOptions(); !errors.Is(err, storage.ErrUnwritable) {
		t.Errorf("StorageOptions of a file as directory: %v, want storage.ErrUnwritable", err)
	}
}

func TestExportConfig(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "example.yaml"), WithCPUs(testCPUs))
	if err != nil {
		t.Fatal(err)
	}
	out := c.Captures[0].Output.Export
	got, err := c.Export.ExportConfig(out.URL, out.DeleteAfterUpload, c.Captures[0].Name)
	if err != nil {
		t.Fatalf("ExportConfig: %v", err)
	}
	want := export.Config{
		Bucket: "captures", Prefix: "ringtap/",
		Endpoint: "https://minio.example:9000", Region: "us-east-1", Addressing: export.AddressingAuto,
		CAFile: "/etc/ringtap/minio-ca.pem", Checksum: export.ChecksumMD5,
		KeyTemplate: export.DefaultKeyTemplate, PartSize: 16 << 20, Concurrency: 1,
		Spool: "/var/lib/ringtap/spool/web", DeleteAfterUpload: true, StallTimeout: 2 * time.Minute,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(export.Config{})); diff != "" {
		t.Errorf("ExportConfig (-want +got):\n%s", diff)
	}
	for _, spool := range []string{"", "..", "a/b"} {
		if _, err := c.Export.ExportConfig(out.URL, false, spool); err == nil {
			t.Errorf("ExportConfig with spool %q: no error", spool)
		}
	}
}

// issueExample is the configuration of the agent's issue, as written.
const issueExample = `captures:
  - name: web                 # unique; used in file names and metrics
    interface: eth0
    filter: "tcp port 443"    # tcpdump syntax
    snaplen: 256
    hook: auto                # auto | xdp | tc
    direction: inout          # in | out | inout
    monitor_port: false
    output:
      dir: /var/lib/ringtap/web
      rotate: {size_mb: 512, seconds: 300, keep: 100}
      compress: zstd
      retention: {max_bytes: 50GB, max_age: 168h, min_free: 10%}
      export: {url: "s3://bucket/prefix/", delete_after_upload: true}
http:
  listen: 127.0.0.1:9273
shutdown_hook: /usr/local/bin/on-ringtap-stop   # optional, run with a timeout
`

// TestIssueExample: the example that defined the agent's configuration
// loads as written, with what each key says. Without an export section
// the upload goes to AWS S3 with the section's defaults (as export: {}).
func TestIssueExample(t *testing.T) {
	c, err := Parse([]byte(issueExample), "agent.yaml", WithCPUs(testCPUs))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Captures) != 1 {
		t.Fatalf("captures = %+v", c.Captures)
	}
	cp := c.Captures[0]
	if cp.Name != "web" || cp.Interface != "eth0" || cp.Filter != "tcp port 443" || cp.SnapLen != 256 ||
		cp.Hook != capture.HookAuto || cp.Direction != capture.DirInOut || cp.MonitorPort {
		t.Errorf("capture = %+v", cp)
	}
	o := cp.Output
	if o.Dir != "/var/lib/ringtap/web" || o.Rotate != (Rotate{Size: 512_000_000, Age: 300 * time.Second, Keep: 100}) ||
		o.Compress != storage.CompressZstd || o.Retention.MaxBytes != 50_000_000_000 || o.Retention.MaxAge != 168*time.Hour ||
		o.Retention.MinFree != (storage.Space{Percent: 10}) || o.Export != (OutputExport{URL: "s3://bucket/prefix/", DeleteAfterUpload: true}) {
		t.Errorf("output = %+v", o)
	}
	if c.HTTP.Listen != "127.0.0.1:9273" || c.ShutdownHook != "/usr/local/bin/on-ringtap-stop" {
		t.Errorf("http %+v, shutdown_hook %q", c.HTTP, c.ShutdownHook)
	}
	if c.Export == nil {
		t.Fatal("no export settings for the capture's upload")
	}
	got, err := c.Export.ExportConfig(o.Export.URL, o.Export.DeleteAfterUpload, cp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bucket != "bucket" || got.Prefix != "prefix/" || got.Endpoint != "" || !got.DeleteAfterUpload || got.Spool != filepath.Join(export.DefaultSpool, "web") {
		t.Errorf("export config = %+v", got)
	}
	// The same without the upload: no export settings at all.
	noUpload := strings.Replace(issueExample, `      export: {url: "s3://bucket/prefix/", delete_after_upload: true}
`, "", 1)
	if c, err := Parse([]byte(noUpload), "agent.yaml", WithCPUs(testCPUs)); err != nil || c.Export != nil {
		t.Errorf("without output.export: %v, export %+v", err, c.Export)
	}
}
