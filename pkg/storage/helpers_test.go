package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the start of the tests' fake time: 2026-12-01T10:00:00Z.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Options.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var eth0 = []pcapio.Interface{{Name: "eth0", LinkType: 1, SnapLen: 65535}}

// mustTool finds an external tool; without it the test skips, or fails
// under CI=true.
func mustTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not in PATH: %v", name, err)
	}
	return p
}

// mustRun runs a tool and returns its standard output.
func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(mustTool(t, name), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

// capinfosPackets is the packet count capinfos reports for path.
func capinfosPackets(t testing.TB, path string) int {
	t.Helper()
	out := mustRun(t, "capinfos", "-M", "-c", "-T", "-r", path)
	f := strings.Fields(out)
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("capinfos output %q: %v", out, err)
	}
	return n
}

// tsharkPackets counts the packets tshark reads from path, failing on
// any complaint.
func tsharkPackets(t testing.TB, path string) int {
	t.Helper()
	out := mustRun(t, "tshark", "-r", path, "-T", "fields", "-e", "frame.number")
	return strings.Count(out, "\n")
}

// mustRecorder makes a Recorder and closes it at cleanup if the test did
// not.
// discardLog keeps tests quiet.
var discardLog = slog.New(slog.DiscardHandler)

func mustRecorder(t testing.TB, o Options) *Recorder {
	t.Helper()
	if o.Interfaces == nil {
		o.Interfaces = eth0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := NewRecorder(o)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// seqPacket is packet number i: its data starts with a frame of the
// corpus and carries i at bytes 14-21, so that files can be checked for
// exactly which packets they hold.
func seqPacket(i int, ts int64) *pcapio.Packet {
	c := corpus()
	f := bytes.Clone(c[i%len(c)])
	binary.BigEndian.PutUint64(f[14:], uint64(i))
	return &pcapio.Packet{Timestamp: ts, WireLen: uint32(len(f)), Data: f, Direction: pcapio.DirInbound}
}

var corpus = sync.OnceValue(func() [][]byte {
	var out [][]byte
	for _, f := range trafficgen.Corpus() {
		out = append(out, f.Data)
	}
	return out
})

// mustWrite writes packets first..first+n-1, one every step from ts.
func mustWritePackets(t testing.TB, r *Recorder, first, n int, ts int64, step time.Duration) {
	t.Helper()
	for i := range n {
		if err := r.WritePacket(seqPacket(first+i, ts+int64(i)*step.Nanoseconds())); err != nil {
			t.Fatalf("WritePacket(%d): %v", first+i, err)
		}
	}
}

func mustClose(t testing.TB, r *Recorder) {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// readResult is what a capture file holds.
type readResult struct {
	seqs  []int // packet numbers, in file order
	ts    []int64
	stats map[int]pcapio.InterfaceStats
	iface []pcapio.Interface
}

// decompressed opens path, decompressing by extension.
func decompressed(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasSuffix(path, ".zst"):
		d, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if b, err = d.DecodeAll(b, nil); err != nil {
			t.Fatalf("zstd decode %s: %v", path, err)
		}
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gzip decode %s: %v", path, err)
		}
	}
	return b
}

// mustRead reads a capture file with pcapio, to its clean end.
func mustRead(t testing.TB, path string) readResult {
	t.Helper()
	rd, err := pcapio.NewReader(bytes.NewReader(decompressed(t, path)))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var res readResult
	for {
		var p pcapio.Packet
		err := rd.Next(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		res.seqs = append(res.seqs, int(binary.BigEndian.Uint64(p.Data[14:])))
		res.ts = append(res.ts, p.Timestamp)
	}
	res.stats, res.iface = rd.Stats(), rd.Interfaces()
	return res
}

// dataFiles lists the finished capture files in dir (not sidecars, not
// hidden files), sorted by name.
func dataFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), sidecarSuffix) {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	slices.Sort(out)
	return out
}

// bySeq sorts default-template names by their {seq}.
func bySeq(files []string) []string {
	seq := func(p string) int {
		b := filepath.Base(p)
		b = b[strings.LastIndexByte(b, '-')+1:]
		n, _ := strconv.Atoi(b[:strings.IndexByte(b, '.')])
		return n
	}
	slices.SortFunc(files, func(a, b string) int { return seq(a) - seq(b) })
	return files
}

// hiddenFiles lists the names starting with a dot in dir.
func hiddenFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkAccounted checks that every accepted packet was written or
// counted as dropped.
func checkAccounted(t testing.TB, r *Recorder, accepted int) {
	t.Helper()
	s := r.Stats()
	if got := s.PacketsWritten + s.WriteDrops; got != uint64(accepted) {
		t.Errorf("written %d + dropped %d = %d, want the %d packets accepted", s.PacketsWritten, s.WriteDrops, got, accepted)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
