//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// TestStorageUsageErrors: every bad output flag gets one clear sentence
// and a non-zero exit before anything is attached or created. None needs
// root: the flags are checked before the capture opens.
func TestStorageUsageErrors(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string // after -w
		want string
	}{
		{"unknown placeholder", []string{"DIR/", "--name-template", "{iface}-{when}-{seq}.pcapng"}, "unknown placeholder {when}"},
		{"unbalanced brace", []string{"DIR/", "--name-template", "{iface-{seq}.pcapng"}, "unbalanced {"},
		{"escaping slash", []string{"DIR/", "--name-template", "../{iface}-{seq}.pcapng"}, "escapes the output directory"},
		{"template for a file", []string{"DIR/x.pcapng", "--name-template", "{seq}.pcapng"}, "use -w DIR/"},
		{"-W alone", []string{"DIR/", "-W", "5"}, "-W needs -C or -G"},
		{"-W negative", []string{"DIR/", "-C", "1", "-W", "-1"}, "-W -1"},
		{"bad size", []string{"DIR/", "-C", "12XB"}, "-C: size \"12XB\""},
		{"size below a page", []string{"DIR/", "-C", "0.001"}, "below 4096 bytes"},
		{"zero size", []string{"DIR/", "-C", "0"}, "-C must be above 0"},
		{"bad seconds", []string{"DIR/", "-G", "soon"}, "-G: duration \"soon\""},
		{"unknown compression", []string{"DIR/", "--compress", "lz4"}, "--compress \"lz4\""},
		{"compression level", []string{"DIR/", "--compress", "zstd", "--compress-level", "40"}, "zstd level 40 out of range"},
		{"level without compression", []string{"DIR/", "--compress-level", "3"}, "needs a compression"},
		{"frame size", []string{"DIR/", "--compress", "zstd", "--zstd-frame-size", "1KB"}, "--zstd-frame-size 1KB out of range"},
		{"max bytes", []string{"DIR/", "--max-bytes", "lots"}, "--max-bytes"},
		{"max age", []string{"DIR/", "--max-age", "forever"}, "--max-age"},
		{"min free", []string{"DIR/", "--min-free", "150%"}, "--min-free"},
		{"postrotate", []string{"DIR/", "-z", "no-such-postrotate-command"}, "postrotate command"},
		{"rotation on stdout", []string{"-", "-C", "10"}, "-C needs a file or a directory"},
		{"compression on stdout", []string{"-", "--compress", "zstd"}, "--compress needs a file or a directory"},
		{"retention on stdout", []string{"-", "--max-age", "1h"}, "--max-age needs a file or a directory"},
		{"url", []string{"ftp://host/dir/"}, "writes local files"},
		{"unwritable directory", []string{regular + "/sub/"}, "cannot write the output file"},
		{"missing directory of a file", []string{"DIR/nope/x.pcapng"}, "cannot write the output file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"capture", "-i", "lo", "-w"}, tc.args...)
			for i, a := range args {
				args[i] = strings.Replace(a, "DIR", dir, 1)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want an error:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not mention %q:\n%s", tc.want, out)
			}
			if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines > 0 {
				t.Fatalf("want one sentence, got:\n%s", out)
			}
			if strings.Contains(string(out), "listening on") {
				t.Fatalf("the capture started before the flags were checked:\n%s", out)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("a failed start created %v", ents)
			}
		})
	}
}

// TestFailedStartKeepsPreviousFile: a typo in -i used to truncate and
// then delete yesterday's file. Now the output is checked first and
// written under a temporary name, so a failed start leaves it as it was.
func TestFailedStartKeepsPreviousFile(t *testing.T) {
	for _, extra := range [][]string{nil, {"-C", "1"}, {"--compress", "zstd"}} {
		t.Run(strings.Join(extra, " "), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "ringtap.pcapng")
			yesterday := []byte("yesterday's capture, precious")
			if err := os.WriteFile(out, yesterday, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := exec.Command(binPath, append([]string{"capture", "-i", "nosuch0", "-w", out}, extra...)...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0 with a bad interface:\n%s", res)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, yesterday) {
				t.Fatalf("the previous file changed after a failed start: %q\n%s", got, res)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("a failed start left %v", ents)
			}
		})
	}
}

// udpFrames are n UDP frames from a to b with their number at the start
// of the payload.
func udpFrames(t *testing.T, p *testbed.Pair, first, n, size int) [][]byte {
	t.Helper()
	base := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4, SrcPort: 1000, DstPort: 9, Size: size}))
	out := make([][]byte, n)
	for i := range out {
		f := bytes.Clone(base)
		binary.BigEndian.PutUint64(f[42:], uint64(first+i))
		out[i] = f
	}
	return out
}

// capFile is one capture file as read by the test.
type capFile struct {
	path string
	seqs []uint64 // numbers of our UDP frames; others count as 1<<63
}

// readCapture reads a (possibly zstd-compressed) capture file to its end.
func readCapture(t *testing.T, path string) capFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".zst") {
		d, _ := zstd.NewReader(nil)
		defer d.Close()
		if b, err = d.DecodeAll(b, nil); err != nil {
			t.Fatalf("zstd %s: %v", path, err)
		}
	}
	rd, err := pcapio.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	cf := capFile{path: path}
	for {
		var p pcapio.Packet
		err := rd.Next(&p)
		if errors.Is(err, io.EOF) {
			return cf
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		seq := uint64(1 << 63)
		if len(p.Data) >= 50 && p.Data[23] == 17 {
			seq = binary.BigEndian.Uint64(p.Data[42:])
		}
		cf.seqs = append(cf.seqs, seq)
	}
}

// captureFiles lists the finished capture files of dir (no sidecars, no
// temporary files).
func captureFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") && !strings.HasSuffix(e.Name(), ".json") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// mustCapinfosTotal checks every file with one capinfos run and returns
// the packets counted.
func mustCapinfosTotal(t *testing.T, files []string) int {
	t.Helper()
	out, err := exec.Command("capinfos", append([]string{"-M", "-c", "-T", "-r"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos: %v\n%s", err, out)
	}
	total := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			t.Fatalf("capinfos line %q", l)
		}
		total += n
	}
	return total
}

func TestCaptureRotatesIntoDirectory(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := filepath.Join(t.TempDir(), "captures") + "/"
	s := mustStart(t, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", dir, "-C", "20KB", "--compress", "zstd", "udp")
	const n = 400
	if err := trafficgen.SendRaw(pair.A, udpFrames(t, pair, 0, n, 200)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
	files := captureFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d files, want several at 20 KB each\n%s", len(files), s.stderr)
	}
	if got := mustCapinfosTotal(t, files); got != n {
		t.Errorf("capinfos counts %d packets in all files, want %d", got, n)
	}
	for _, f := range files {
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(pair.B.Link) + `-\d{8}T\d{6}\.\d{9}Z-\d+\.pcapng\.zst$`).MatchString(filepath.Base(f)) {
			t.Errorf("file name %s does not follow the default template", filepath.Base(f))
		}
		if _, err := os.Stat(f + ".json"); err != nil {
			t.Errorf("no sidecar: %v", err)
		}
	}
	want := fmt.Sprintf("%d packets written to %s in %d files, 0 packets dropped by the writer", n, dir, len(files))
	if !strings.Contains(s.stderr.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, s.stderr)
	}
}

// waitQuiet waits until the bytes in dir (temporary files included)
// stop changing for a second: everything the capture had was handed to
// the kernel, and an open zstd frame has ended by its idle time.
func waitQuiet(t *testing.T, dir string) {
	t.Helper()
	size := func() int64 {
		var n int64
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	last, since := size(), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := size(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 1500*time.Millisecond {
			return
		}
	}
	t.Fatal("the capture directory never went quiet")
}

func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestSIGKILLThenRecover kills a rotating capture with SIGKILL while it
// writes a burst, then recovers the directory (with ringtap recover, or
// by starting the next capture there).
//
// What can be asserted exactly:
//   - Phase 1 sends N1 numbered frames and waits until the directory is
//     quiet: they are all in the kernel (written, a zstd frame ended), so
//     after the kill and the recovery every one of them is in the files,
//     exactly once.
//   - Phase 2 sends a burst with live frames and kills the capture during
//     it. What was in the rings, the readers' batches and the writer's
//     queue at the kill is lost; what was written before survives up to
//     the torn end. So the total is at least N1 and at most N1 plus the
//     frames sent in phase 2 (when the sender counted them exactly).
//   - Files finished before the kill are not touched; no temporary file
//     is left; every file reads cleanly in capinfos and our reader.
func TestSIGKILLThenRecover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flags    []string
		restart  bool // recover by starting the next capture
		sentinel string
	}{
		{"pcapng, ringtap recover", nil, false, ""},
		{"zstd, next start", []string{"--compress", "zstd"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testbedtest.RequirePrivileged(t)
			pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
			dir := filepath.Join(t.TempDir(), "caps") + "/"
			args := append([]string{"capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", dir, "-C", "300KB", "-s", "128"}, tc.flags...)
			s := mustStart(t, append(args, "udp")...)
			const n1 = 3000
			if err := trafficgen.SendRaw(pair.A, udpFrames(t, pair, 0, n1, 200)); err != nil {
				t.Fatal(err)
			}
			waitQuiet(t, dir)
			finished := map[string][32]byte{}
			for _, f := range captureFiles(t, dir) {
				finished[f] = digest(t, f)
			}
			if len(finished) == 0 {
				t.Fatal("no file finished before the kill: make phase 1 larger than -C")
			}

			// Phase 2: a burst, killed in the middle.
			frame := udpFrames(t, pair, 1<<32, 1, 64)[0]
			ls, err := trafficgen.NewLiveSender(pair.A, frame)
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			ctx, stop := context.WithCancel(context.Background())
			type sent struct {
				res trafficgen.Result
				err error
			}
			done := make(chan sent, 1)
			go func() {
				res, err := ls.Run(ctx, 0, 0)
				done <- sent{res, err}
			}()
			time.Sleep(300 * time.Millisecond)
			if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			s.wait(t)
			stop()
			burst := <-done
			if burst.err != nil {
				t.Fatalf("live sender: %v", burst.err)
			}
			var temps []string
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".part") && !strings.HasSuffix(e.Name(), ".json.part") {
					temps = append(temps, e.Name())
				}
			}
			if len(temps) == 0 {
				t.Fatalf("no temporary file after SIGKILL mid-write: %v", ents)
			}

			var report string
			if tc.restart {
				s2 := mustStart(t, args...)
				if err := s2.cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				if err := s2.wait(t); err != nil {
					t.Fatalf("second capture: %v\n%s", err, s2.stderr)
				}
				report = s2.stderr.String()
				// Recovered, or (zstd) removed when the kill came within
				// the file's first frame, which cannot be verified.
				if n := strings.Count(report, "recovered torn capture file") + strings.Count(report, "torn capture file removed"); n != len(temps) {
					t.Errorf("the next start reported %d recoveries for %d temporary files %v:\n%s", n, len(temps), temps, report)
				}
			} else {
				out, err := exec.Command(binPath, "recover", dir).CombinedOutput()
				if err != nil {
					t.Fatalf("ringtap recover: %v\n%s", err, out)
				}
				report = string(out)
				// One line per file: recovered, or removed when the kill
				// came before its first byte.
				re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dir) + `(\S+: recovered \d+ packets, \d+ bytes cut|\S+\.part: removed: no complete packet data \(\d+ bytes\))$`)
				if got := len(re.FindAllString(report, -1)); got != len(temps) || !strings.Contains(report, "recovered") {
					t.Errorf("ringtap recover printed %d lines for %d temporary files %v:\n%s", got, len(temps), temps, report)
				}
			}
			ents, _ = os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("temporary file left after recovery: %s", e.Name())
				}
			}
			for f, d := range finished {
				if digest(t, f) != d {
					t.Errorf("recovery changed %s, which was finished before the kill", f)
				}
			}
			files := captureFiles(t, dir)
			capinfos := mustCapinfosTotal(t, files)
			seen := map[uint64]int{}
			total := 0
			for _, f := range files {
				cf := readCapture(t, f)
				total += len(cf.seqs)
				for _, q := range cf.seqs {
					if q < n1 {
						seen[q]++
					}
				}
			}
			if total != capinfos {
				t.Errorf("we read %d packets, capinfos %d", total, capinfos)
			}
			for q := range uint64(n1) {
				if seen[q] != 1 {
					t.Fatalf("phase-1 frame %d is in the files %d times, want once\n%s", q, seen[q], report)
				}
			}
			if total < n1 {
				t.Errorf("%d packets after recovery, want at least the %d of phase 1", total, n1)
			}
			if burst.res.Retries == 0 && uint64(total) > n1+burst.res.Sent {
				t.Errorf("%d packets after recovery, more than the %d sent", total, n1+burst.res.Sent)
			}
			t.Logf("phase 1: %d frames, all kept; phase 2: %d sent, %d kept (the rest dropped by ring overflow, or in the rings and buffers at the kill); %d files, %d recovered",
				n1, burst.res.Sent, total-n1, len(files), len(temps))
		})
	}
}
