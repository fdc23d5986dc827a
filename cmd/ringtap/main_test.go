//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ringtap-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "ringtap")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build ringtap: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// started is a ringtap process that printed its "listening on" line.
type started struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	stdout io.ReadCloser
	done   chan error
}

func mustStart(t *testing.T, args ...string) *started {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	pr, pw := io.Pipe()
	s := &started{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = pw
	var err error
	if s.stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			s.stderr.WriteString(sc.Text() + "\n")
			if !once && strings.HasPrefix(sc.Text(), "listening on ") {
				once = true
				close(listening)
			}
		}
	}()
	go func() {
		s.done <- cmd.Wait()
		pw.Close()
	}()
	select {
	case <-listening:
	case err := <-s.done:
		t.Fatalf("ringtap exited before listening: %v\n%s", err, s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("ringtap did not print its listening line\n%s", s.stderr)
	}
	return s
}

func (s *started) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		time.Sleep(50 * time.Millisecond) // let the stderr copier finish
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("ringtap did not exit\n%s", s.stderr)
	}
	return nil
}

func mustUDP(t *testing.T, p *testbed.Pair, n, size int) [][]byte {
	t.Helper()
	f := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4, SrcPort: 1000, DstPort: 53, Size: size}))
	out := make([][]byte, n)
	for i := range out {
		out[i] = f
	}
	return out
}

func capinfosCount(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("capinfos", "-M", "-c", "-T", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

func TestCaptureSIGINTFinishesFile(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	out := filepath.Join(t.TempDir(), "x.pcapng")
	s := mustStart(t, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", out, "udp")
	if err := trafficgen.SendRaw(pair.A, mustUDP(t, pair, 25, 100)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
	if got := capinfosCount(t, out); got != "25" {
		t.Fatalf("capinfos counted %s packets, want 25\n%s", got, s.stderr)
	}
	want := fmt.Sprintf("%s: 25 packets captured, 0 packets dropped by ring overflow, 25 packets seen by hook", pair.B.Link)
	if !strings.Contains(s.stderr.String(), want) {
		t.Fatalf("summary missing %q in:\n%s", want, s.stderr)
	}
}

func TestCaptureToStdoutPipesIntoTshark(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	s := mustStart(t, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", "-", "-c", "20", "-q")
	tshark := exec.Command("tshark", "-r", "-", "-T", "fields", "-e", "frame.len")
	tshark.Stdin = s.stdout
	outc := make(chan []byte, 1)
	go func() {
		out, _ := tshark.Output()
		outc <- out
	}()
	if err := trafficgen.SendRaw(pair.A, mustUDP(t, pair, 30, 200)); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
	out := <-outc
	if n := strings.Count(string(out), "200\n"); n != 20 {
		t.Fatalf("tshark read %d 200-byte frames, want 20:\n%s", n, out)
	}
}

func TestSIGKILLLeavesNothingAttached(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	for _, args := range [][]string{{"--hook", "xdp"}, {"--hook", "tc", "--direction", "inout"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			s := mustStart(t, append([]string{"capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", filepath.Join(t.TempDir(), "k.pcapng")}, args...)...)
			if got := testbedtest.MustAttached(t, pair.B); len(got) == 0 {
				t.Fatal("nothing attached while running")
			}
			if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			s.wait(t)
			if strings.Contains(s.stderr.String(), "hook tc-clsact") {
				// Kernels before 6.6 (no TCX): netlink clsact filters are
				// not bpf_links and outlive the process, as the README
				// says. Check that exactly ours are left, then remove them.
				got := testbedtest.MustAttached(t, pair.B)
				if diff := cmp.Diff([]string{"tc ingress filter bpf", "tc egress filter bpf"}, got); diff != "" {
					t.Fatalf("after SIGKILL with clsact (-want +got):\n%s", diff)
				}
				if out, err := exec.Command("ip", "netns", "exec", pair.B.NSName, "tc", "qdisc", "del", "dev", pair.B.Link, "clsact").CombinedOutput(); err != nil {
					t.Fatalf("remove the clsact qdisc: %v\n%s", err, out)
				}
			}
			// The kernel releases bpf_links when the last fd closes;
			// give the deferred release a moment.
			deadline := time.Now().Add(5 * time.Second)
			for {
				got := testbedtest.MustAttached(t, pair.B)
				if len(got) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still attached after SIGKILL: %v", got)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestInterfaceGoneExitsNonZero(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	out := filepath.Join(t.TempDir(), "gone.pcapng")
	s := mustStart(t, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", out)
	if err := trafficgen.SendRaw(pair.A, mustUDP(t, pair, 5, 80)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := pair.B.Do(func() error {
		l, err := netlink.LinkByName(pair.B.Link)
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	}); err != nil {
		t.Fatal(err)
	}
	err := s.wait(t)
	if err == nil {
		t.Fatalf("exit 0 after the interface went away\n%s", s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "interface went away during capture") {
		t.Fatalf("no clear message:\n%s", s.stderr)
	}
	if got := capinfosCount(t, out); got != "5" {
		t.Fatalf("capinfos counted %s packets in the finished file, want 5", got)
	}
}

func TestUserErrors(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown interface", []string{"capture", "-i", "nosuch0", "-w", filepath.Join(dir, "a")}, "no such interface: nosuch0"},
		{"snaplen", []string{"capture", "-i", "lo", "-s", "300000", "-w", filepath.Join(dir, "b")}, "snaplen 300000 out of range"},
		{"unwritable", []string{"capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", "/nonexistent/dir/x.pcapng"}, "cannot write the output file"},
		{"bad expression", []string{"capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", filepath.Join(dir, "c"), "tcp", "port", "banana"}, "banana"},
		{"live-only expression", []string{"filter", "explain", "inbound"}, "inbound"},
		{"format", []string{"capture", "-i", "lo", "-F", "jpeg", "-w", filepath.Join(dir, "d")}, "jpeg"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"xdp mode", []string{"capture", "-i", "lo", "--xdp-mode", "turbo", "-w", filepath.Join(dir, "e")}, "unknown xdp mode"},
		{"xdp mode on tc", []string{"capture", "-i", "lo", "--hook", "tc", "--xdp-mode", "generic", "-w", filepath.Join(dir, "f")}, "needs the XDP hook"},
		{"xdp mode on auto tc", []string{"capture", "-i", "lo", "--direction", "out", "--xdp-mode", "native", "-w", filepath.Join(dir, "f2")}, "needs the XDP hook"},
		{"pinned shared ring", []string{"capture", "-i", "lo", "--shared-ring", "--pin-readers", "-w", filepath.Join(dir, "g")}, "pinning readers needs per-CPU rings"},
		{"wakeup beyond ring", []string{"capture", "-i", "lo", "--ring-size", "1048576", "--wakeup-bytes", "2097152", "-w", filepath.Join(dir, "h")}, "must be smaller than the ring"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binPath, tt.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want an error:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output does not mention %q:\n%s", tt.want, out)
			}
			if strings.Count(strings.TrimSpace(string(out)), "\n") > 3 && !strings.Contains(string(out), "usage") {
				t.Fatalf("want one clear sentence, got:\n%s", out)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	out := filepath.Join(t.TempDir(), "demo.pcapng")
	cmd := exec.Command(binPath, "capture", "-w", out, "--demo-packets", "20000")
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, res)
	}
	if !strings.Contains(string(res), "reached "+out) {
		t.Fatalf("demo did not confirm every frame arrived:\n%s", res)
	}
}

func TestFilterTestAgreesWithTcpdump(t *testing.T) {
	const in = "../../testdata/filter/frames.pcap"
	for _, expr := range []string{"udp", "vlan 100 and udp", "tcp[tcpflags] & tcp-syn != 0", "ip6 and not tcp"} {
		t.Run(expr, func(t *testing.T) {
			testbedtest.RequirePrivileged(t)
			dir := t.TempDir()
			got := filepath.Join(dir, "got.pcap")
			out, err := exec.Command(binPath, "filter", "test", "-r", in, "-w", got, expr).CombinedOutput()
			if err != nil {
				t.Fatalf("filter test: %v\n%s", err, out)
			}
			want := filepath.Join(dir, "want.pcap")
			if out, err := exec.Command("tcpdump", "-r", in, "-w", want, expr).CombinedOutput(); err != nil {
				t.Fatalf("tcpdump: %v\n%s", err, out)
			}
			fields := func(path string) string {
				out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len").Output()
				if err != nil {
					t.Fatalf("tshark %s: %v", path, err)
				}
				return string(out)
			}
			w := fields(want)
			if g := fields(got); g != w {
				t.Fatalf("ringtap's matches differ from tcpdump's:\nringtap:\n%s\ntcpdump:\n%s", g, w)
			}
			n := strings.Count(w, "\n")
			if !strings.Contains(string(out), fmt.Sprintf("%d of ", n)) {
				t.Fatalf("summary %q, want %d matches", out, n)
			}
		})
	}
}

func TestCaptureFilterSeesReinsertedVLANOnTC(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	out := filepath.Join(t.TempDir(), "vlan.pcapng")
	s := mustStart(t, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "--hook", "tc", "-w", out, "-c", "3", "vlan 100 and udp")
	var frames [][]byte
	for _, vlans := range [][]uint16{{100}, {200}, nil, {100}, {100}} {
		frames = append(frames, trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{VLANs: vlans, SrcMAC: pair.A.MAC, DstMAC: pair.B.MAC, SrcPort: 1, DstPort: 2, Size: 80})))
	}
	if err := trafficgen.SendRaw(pair.A, frames); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
	tags, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "vlan.id").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(tags)); strings.Join(got, ",") != "100,100,100" {
		t.Fatalf("captured VLAN ids %v, want 100 three times\n%s", got, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "5 packets seen by hook (3 matched the filter)") {
		t.Fatalf("summary:\n%s", s.stderr)
	}
}
