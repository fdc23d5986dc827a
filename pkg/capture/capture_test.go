//go:build linux

package capture_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

const jumboMTU = 9000

// testFrames is the corpus plus frames at the size limits: minimum
// Ethernet, jumbo up to the MTU, VLAN-tagged jumbo.
func testFrames(t *testing.T, p *testbed.Pair) [][]byte {
	t.Helper()
	var frames [][]byte
	for _, f := range trafficgen.Corpus() {
		frames = append(frames, f.Data)
	}
	base := trafficgen.FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4, SrcPort: 1234, DstPort: 5678}
	for _, size := range []int{60, 61, 127, 128, 129, 1514, 4000, jumboMTU + 14} {
		o := base
		o.Size = size
		frames = append(frames, trafficgen.Must(trafficgen.BuildUDP4(o)))
	}
	o := base
	o.VLANs = []uint16{100}
	o.Size = jumboMTU + 14
	frames = append(frames, trafficgen.Must(trafficgen.BuildUDP4(o)))
	return frames
}

type captured struct {
	wireLen uint32
	data    string
	dir     pcapio.Direction
}

func mustReadFile(t *testing.T, path string) ([]captured, *pcapio.Reader) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapio.NewReader(f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out []captured
	var p pcapio.Packet
	for {
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		out = append(out, captured{wireLen: p.WireLen, data: string(p.Data), dir: p.Direction})
	}
	return out, r
}

// mustToolCount asks capinfos how many packets path holds, and checks
// that tshark reads all of them.
func mustToolCount(t *testing.T, path string) int {
	t.Helper()
	for _, tool := range []string{"capinfos", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			testbedtest.SkipOrFail(t, "%s not installed (make deps installs it)", tool)
		}
	}
	out, err := exec.Command("capinfos", "-M", "-c", "-T", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos %s: %v\n%s", path, err, out)
	}
	fields := strings.Fields(strings.TrimSpace(string(out)))
	n, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil {
		t.Fatalf("capinfos output %q: %v", out, err)
	}
	out, err = exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	if lines := strings.Count(string(out), "\n"); lines != n {
		t.Fatalf("tshark read %d packets, capinfos counted %d", lines, n)
	}
	return n
}

func sortCaptured(c []captured) {
	sort.Slice(c, func(i, j int) bool {
		if c[i].data != c[j].data {
			return c[i].data < c[j].data
		}
		return c[i].wireLen < c[j].wireLen
	})
}

func TestEndToEnd(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	tests := []struct {
		name      string
		hook      capture.Hook
		dir       capture.Direction
		onSender  bool // capture the sender's egress
		snaplen   uint32
		format    pcapio.Format
		wantDir   pcapio.Direction
		clsact    bool
		rcvrNoXDP bool
		filter    string // accepts every frame; the filter path copies a window smaller than snaplen
		xdpMode   capture.XDPMode
		shared    bool
		pin       bool
	}{
		{name: "xdp-in", hook: capture.HookXDP, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound},
		{name: "xdp-in-snap100-pcap", hook: capture.HookXDP, dir: capture.DirIn, snaplen: 100, format: pcapio.FormatPCAP, wantDir: pcapio.DirUnknown},
		{name: "tc-in", hook: capture.HookTC, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound},
		{name: "tc-out", hook: capture.HookTC, dir: capture.DirOut, onSender: true, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirOutbound},
		{name: "tc-out-snap128", hook: capture.HookTC, dir: capture.DirOut, onSender: true, snaplen: 128, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirOutbound},
		{name: "tc-in-clsact", hook: capture.HookTC, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound, clsact: true},
		// Shorter than MACs + reinserted VLAN tag.
		{name: "tc-in-snap14", hook: capture.HookTC, dir: capture.DirIn, snaplen: 14, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound},
		{name: "xdp-generic-in", hook: capture.HookXDP, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound, xdpMode: capture.XDPGeneric},
		{name: "xdp-in-shared-ring", hook: capture.HookXDP, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound, shared: true},
		{name: "tc-out-pinned", hook: capture.HookTC, dir: capture.DirOut, onSender: true, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirOutbound, pin: true},
		{name: "xdp-in-filtered", hook: capture.HookXDP, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound, filter: "ether[0] & 0 = 0 or len >= 0"},
		{name: "tc-in-filtered", hook: capture.HookTC, dir: capture.DirIn, snaplen: 65535, format: pcapio.FormatPCAPNG, wantDir: pcapio.DirInbound, filter: "ether[0] & 0 = 0 or len >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair := testbedtest.MustNewPair(t, testbed.PairConfig{MTU: jumboMTU})
			host := pair.B
			if tt.onSender {
				host = pair.A
			}
			frames := testFrames(t, pair)
			path := filepath.Join(t.TempDir(), "out."+tt.format.String())
			var f *capture.Filter
			if tt.filter != "" {
				var err error
				if f, err = filter.ForCapture(tt.filter); err != nil {
					t.Fatal(err)
				}
			}
			st := mustCapture(t, capture.Config{
				Interfaces: []string{host.Link}, Hook: tt.hook, Direction: tt.dir, SnapLen: tt.snaplen,
				NetNS: host.NSPath, ForceClsact: tt.clsact, Filter: f,
				XDPMode: tt.xdpMode, SharedRing: tt.shared, PinReaders: tt.pin,
			}, tt.format, path, func() {
				if err := trafficgen.SendRaw(pair.A, frames); err != nil {
					t.Fatalf("send: %v", err)
				}
			}, uint64(len(frames)))

			var want []captured
			for _, f := range frames {
				n := min(len(f), int(tt.snaplen))
				want = append(want, captured{wireLen: uint32(len(f)), data: string(f[:n]), dir: tt.wantDir})
			}
			got, _ := mustReadFile(t, path)
			sortCaptured(want)
			sortCaptured(got)
			if diff := cmp.Diff(len(want), len(got)); diff != "" {
				t.Errorf("packet count (-want +got):\n%s", diff)
			}
			for i := range min(len(want), len(got)) {
				if want[i] != got[i] {
					t.Fatalf("packet %d differs:\nwant wire %d dir %d % x\n got wire %d dir %d % x", i,
						want[i].wireLen, want[i].dir, want[i].data, got[i].wireLen, got[i].dir, got[i].data)
				}
			}
			if n := mustToolCount(t, path); n != len(frames) {
				t.Errorf("capinfos counted %d packets, sent %d", n, len(frames))
			}
			is := st.Interfaces[0].Total()
			if is.Captured != uint64(len(frames)) || is.Dropped != 0 || is.Matched != is.Captured {
				t.Errorf("counters %+v, want %d captured and none dropped", is, len(frames))
			}
		})
	}
}

// mustCapture opens a capture, runs send once it is attached, waits until
// want packets were written (or a deadline), stops it and returns the stats.
func mustCapture(t *testing.T, cfg capture.Config, format pcapio.Format, path string, send func(), want uint64) capture.Stats {
	t.Helper()
	c, err := capture.Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer c.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapio.NewWriter(f, pcapio.WriterOptions{Format: format, Application: "ringtap test", Interfaces: c.Interfaces()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, w) }()
	send()
	deadline := time.Now().Add(10 * time.Second)
	for c.Written() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Anything beyond want would be a bug; give it a moment to show.
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return st
}

func TestRingOverflowCountsDrops(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	c, err := capture.Open(capture.Config{
		Interfaces: []string{pair.B.Link}, Hook: capture.HookXDP, NetNS: pair.B.NSPath,
		RingSize: capture.MinRingSize, SnapLen: 1500,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: pair.A.MAC, DstMAC: pair.B.MAC, Src: pair.A.IPv4, Dst: pair.B.IPv4, SrcPort: 1, DstPort: 2, Size: 1000}))
	const n = 200 // 200 KB of records into a 16 KiB ring nobody reads
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = frame
	}
	if err := trafficgen.SendRaw(pair.A, frames); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	tot := st.Interfaces[0].Total()
	if tot.Seen != n || tot.Matched != n {
		t.Fatalf("seen %d matched %d, want %d", tot.Seen, tot.Matched, n)
	}
	if tot.Dropped == 0 || tot.Captured+tot.Dropped != tot.Seen {
		t.Fatalf("captured %d + dropped %d != seen %d (want drops)", tot.Captured, tot.Dropped, tot.Seen)
	}
	// The reader starts late: everything the ring held reaches the writer.
	var buf bytes.Buffer
	w, err := pcapio.NewWriter(&buf, pcapio.WriterOptions{Interfaces: c.Interfaces()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	if c.Written() != tot.Captured {
		t.Fatalf("written %d, captured %d", c.Written(), tot.Captured)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapio.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var p pcapio.Packet
	for r.Next(&p) == nil {
	}
	if s := r.Stats()[0]; s.Dropped != tot.Dropped || s.Received != n {
		t.Fatalf("interface statistics block %+v, want dropped %d received %d", s, tot.Dropped, n)
	}
}

func TestCountStopsCapture(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	frame := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: pair.A.MAC, DstMAC: pair.B.MAC, Src: pair.A.IPv4, Dst: pair.B.IPv4, SrcPort: 1, DstPort: 2, Size: 64}))
	c, err := capture.Open(capture.Config{Interfaces: []string{pair.B.Link}, NetNS: pair.B.NSPath, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var buf bytes.Buffer
	w, err := pcapio.NewWriter(&buf, pcapio.WriterOptions{Interfaces: c.Interfaces()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), w) }()
	frames := make([][]byte, 50)
	for i := range frames {
		frames[i] = frame
	}
	if err := trafficgen.SendRaw(pair.A, frames); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not stop after -c 10")
	}
	if c.Written() != 10 {
		t.Fatalf("written %d, want 10", c.Written())
	}
}

// openFDs lists what the process's open file descriptors point to.
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			out = append(out, target)
		}
	}
	sort.Strings(out)
	return out
}

func TestStopLeavesNothing(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	configs := []capture.Config{
		{Hook: capture.HookXDP},
		{Hook: capture.HookTC, Direction: capture.DirInOut},
		{Hook: capture.HookTC, Direction: capture.DirInOut, ForceClsact: true},
	}
	// Warm up once so lazily created runtime fds don't count as leaks.
	var fds []string
	for round := range 3 {
		for _, cfg := range configs {
			cfg.Interfaces = []string{pair.B.Link}
			cfg.NetNS = pair.B.NSPath
			c, err := capture.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := testbedtest.MustAttached(t, pair.B); len(got) == 0 {
				t.Fatalf("%v/%v: nothing attached while open", cfg.Hook, cfg.Direction)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			if err := c.Run(ctx, discard{}); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second close: %v", err)
			}
			if got := testbedtest.MustAttached(t, pair.B); len(got) != 0 {
				t.Fatalf("%v/%v: still attached after close: %v", cfg.Hook, cfg.Direction, got)
			}
		}
		if round == 0 {
			fds = openFDs(t)
		} else if diff := cmp.Diff(fds, openFDs(t)); diff != "" {
			t.Fatalf("round %d: open fds differ from the first round's (-first +now):\n%s", round, diff)
		}
	}
	goleak.VerifyNone(t)
}

type discard struct{}

func (discard) WritePacket(*pcapio.Packet) error { return nil }
func (discard) Flush() error                     { return nil }

func TestOpenErrors(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	tests := []struct {
		name string
		cfg  capture.Config
		want string
	}{
		{"unknown interface", capture.Config{Interfaces: []string{"nosuch0"}}, "no such interface: nosuch0"},
		{"snaplen", capture.Config{Interfaces: []string{pair.B.Link}, SnapLen: 300000}, "snaplen 300000 out of range: use 1 to 262144"},
		{"ring too small for snaplen", capture.Config{Interfaces: []string{pair.B.Link}, RingSize: 1 << 16},
			"a 65536-byte ring cannot hold records of snaplen 262144 (262192 bytes each, the ring must hold two): use a --ring-size of at least 1048576 or a smaller -s"},
		{"wakeup never", capture.Config{Interfaces: []string{pair.B.Link}, RingSize: 1 << 20, WakeupBytes: 1 << 20},
			"wakeup threshold 1048576 must be smaller than the ring (1048576 bytes)"},
		{"ring size", capture.Config{Interfaces: []string{pair.B.Link}, RingSize: 1000}, "ring size 1000 invalid"},
		{"xdp out", capture.Config{Interfaces: []string{pair.B.Link}, Hook: capture.HookXDP, Direction: capture.DirOut}, "needs --hook tc"},
		{"monitor out", capture.Config{Interfaces: []string{pair.B.Link}, Hook: capture.HookTC, Direction: capture.DirOut, MonitorPort: true}, "--monitor-port drops received frames: it needs --direction in"},
		{"twice", capture.Config{Interfaces: []string{pair.B.Link, pair.B.Link}}, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.NetNS = pair.B.NSPath
			c, err := capture.Open(tt.cfg)
			if err == nil {
				c.Close()
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestInterfaceGone(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	c, err := capture.Open(capture.Config{Interfaces: []string{pair.B.Link}, NetNS: pair.B.NSPath})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), discard{}) }()
	if err := pair.B.Do(func() error {
		l, err := netlink.LinkByName(pair.B.Link)
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, capture.ErrInterfaceGone) {
			t.Fatalf("run returned %v, want ErrInterfaceGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not notice the interface went away")
	}
}

func TestMultipleInterfacesOneFile(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	path := filepath.Join(t.TempDir(), "multi.pcapng")
	frames := make([][]byte, 7)
	for i := range frames {
		frames[i] = trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: pair.A.MAC, DstMAC: pair.B.MAC, Src: pair.A.IPv4, Dst: pair.B.IPv4, SrcPort: 1, DstPort: 2, Size: 90}))
	}
	mustCapture(t, capture.Config{
		Interfaces: []string{pair.B.Link, "lo"}, Hook: capture.HookTC, NetNS: pair.B.NSPath,
	}, pcapio.FormatPCAPNG, path, func() {
		if err := trafficgen.SendRaw(pair.A, frames); err != nil {
			t.Fatal(err)
		}
		// Three datagrams over B's loopback.
		if err := pair.B.Do(func() error {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer c.Close()
			to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
			for range 3 {
				if _, err := c.WriteTo([]byte("ringtap"), to); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}, 10)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapio.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	perIface := map[int]int{}
	var p pcapio.Packet
	for r.Next(&p) == nil {
		perIface[p.Interface]++
	}
	names := []string{}
	for _, ifc := range r.Interfaces() {
		names = append(names, ifc.Name)
	}
	if diff := cmp.Diff([]string{pair.B.Link, "lo"}, names); diff != "" {
		t.Errorf("interface blocks (-want +got):\n%s", diff)
	}
	if perIface[0] != 7 || perIface[1] < 3 {
		t.Errorf("packets per interface %v, want 7 on the veth and at least 3 on lo", perIface)
	}
}

// TestMonitorPortDrops checks that --monitor-port captures every frame and
// keeps it from the host's stack, at XDP and at TC ingress (the hook used
// on kernels without XDP support), and that without it the stack still
// gets every frame.
func TestMonitorPortDrops(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	tests := []struct {
		name    string
		hook    capture.Hook
		monitor bool
	}{
		{"xdp", capture.HookXDP, true},
		{"tc", capture.HookTC, true},
		{"tc-no-monitor", capture.HookTC, false},
	}
	const n = 50
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
			var conn *net.UDPConn
			if err := pair.B.Do(func() (err error) {
				conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.B.IPv4, 5678)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			frame := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: pair.A.MAC, DstMAC: pair.B.MAC, Src: pair.A.IPv4, Dst: pair.B.IPv4, SrcPort: 1234, DstPort: 5678, Size: 100}))
			frames := make([][]byte, n)
			for i := range frames {
				frames[i] = frame
			}
			path := filepath.Join(t.TempDir(), "out.pcapng")
			st := mustCapture(t, capture.Config{
				Interfaces: []string{pair.B.Link}, Hook: tt.hook, NetNS: pair.B.NSPath, MonitorPort: tt.monitor,
			}, pcapio.FormatPCAPNG, path, func() {
				if err := trafficgen.SendRaw(pair.A, frames); err != nil {
					t.Fatalf("send: %v", err)
				}
			}, n)
			if got := st.Interfaces[0].Total().Captured; got != n {
				t.Errorf("captured %d, sent %d", got, n)
			}
			got := 0
			buf := make([]byte, 2048)
			for {
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := conn.Read(buf); err != nil {
					break
				}
				got++
			}
			want := n
			if tt.monitor {
				want = 0
			}
			if got != want {
				t.Errorf("the host's socket received %d datagrams, want %d", got, want)
			}
		})
	}
}

// TestLoopbackInOutOnce: on loopback a packet leaves and enters the same
// device; --direction inout captures it once (as it enters), as tcpdump
// -i lo shows it.
func TestLoopbackInOutOnce(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	var conn *net.UDPConn
	if err := pair.B.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5678})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 3
	path := filepath.Join(t.TempDir(), "lo.pcapng")
	st := mustCapture(t, capture.Config{
		Interfaces: []string{"lo"}, Hook: capture.HookTC, Direction: capture.DirInOut, NetNS: pair.B.NSPath,
	}, pcapio.FormatPCAPNG, path, func() {
		for range n {
			if _, err := conn.WriteToUDP([]byte("ringtap"), conn.LocalAddr().(*net.UDPAddr)); err != nil {
				t.Fatal(err)
			}
		}
	}, n)
	got, _ := mustReadFile(t, path)
	if len(got) != n {
		t.Fatalf("%d packets in the file, sent %d", len(got), n)
	}
	for i, p := range got {
		if p.dir != pcapio.DirInbound {
			t.Errorf("packet %d: direction %v, want inbound", i, p.dir)
		}
	}
	if c := st.Interfaces[0].Total().Captured; c != n {
		t.Errorf("captured %d, want %d", c, n)
	}
}
