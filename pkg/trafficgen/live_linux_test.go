package trafficgen

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// livePair builds a pair with a counting XDP program on B (closed after
// the test's senders, registered later, have been closed) and a sender on A.
func livePair(t *testing.T, attach func(testbed.Host) (*XDPCounter, error), frame func(*testbed.Pair) []byte) (*testbed.Pair, *XDPCounter, *LiveSender) {
	t.Helper()
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	xdp, err := attach(p.B)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := xdp.Close(); err != nil {
			t.Error(err)
		}
	})
	s, err := NewLiveSender(p.A, frame(p))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the sender is closed (and has
	// stopped) before B's program is detached.
	t.Cleanup(func() { s.Close() })
	return p, xdp, s
}

// toSocket is a frame builder for livePair: it opens a UDP socket at B,
// stores it in *c and addresses the frame to it (source port 4000,
// payload "abcde").
func toSocket(t *testing.T, c **net.UDPConn) func(*testbed.Pair) []byte {
	return func(p *testbed.Pair) []byte {
		*c = listenUDP(t, p.B, p.B.IPv4)
		return Must(BuildUDP4(FrameOpts{
			SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4,
			SrcPort: 4000, DstPort: uint16((*c).LocalAddr().(*net.UDPAddr).Port), Payload: 5, Seed: 'a',
		}))
	}
}

func udpTo(p *testbed.Pair) []byte {
	return Must(BuildUDP4(FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4, Size: 64}))
}

func TestLiveSenderSendsN(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint64
		rate uint64
	}{
		{"top-speed", 100_000, 0},
		{"one", 1, 0},
		{"chunk-boundary", 1<<16 + 1, 0},
		{"paced", 2000, 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, xdp, s := livePair(t, AttachDrop, udpTo)
			rxBefore, err := CountRx(p.B)
			if err != nil {
				t.Fatal(err)
			}
			dropped0, err := CountTxDropped(p.A)
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Run(context.Background(), tc.n, tc.rate)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v (%.2f Mpps)", res, float64(res.Sent)/res.Duration.Seconds()/1e6)
			if res.Sent != tc.n {
				t.Errorf("Sent = %d, want %d", res.Sent, tc.n)
			}
			got := waitArrived(t, p, xdp, res, dropped0)
			rx, err := CountRx(p.B)
			if err != nil {
				t.Fatal(err)
			}
			if rx-rxBefore != got {
				t.Errorf("B's rx_packets grew by %d, its XDP program saw %d", rx-rxBefore, got)
			}
		})
	}
}

func TestLiveSenderPacing(t *testing.T) {
	_, _, s := livePair(t, AttachDrop, udpTo)
	const n, rate = 3000, 20_000 // 150 ms
	res, err := s.Run(context.Background(), n, rate)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Duration(n * float64(time.Second) / rate)
	t.Logf("%+v, paced duration %v", res, want)
	if res.Duration < want*9/10 || res.Duration > want*20 {
		t.Errorf("%d frames at %d/s took %v, want about %v", n, rate, res.Duration, want)
	}
}

func TestLiveSenderStopsOnContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, rate uint64
		wantErr error
	}{
		{"unbounded", 0, 0, nil},
		{"unbounded-paced", 0, 10_000, nil},
		{"bounded", 1 << 40, 0, context.DeadlineExceeded},
		{"bounded-paced", 1 << 40, 10_000, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, xdp, s := livePair(t, AttachDrop, udpTo)
			dropped0, err := CountTxDropped(p.A)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			res, err := s.Run(ctx, tc.n, tc.rate)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Run: %v, want %v", err, tc.wantErr)
			}
			t.Logf("%+v", res)
			if res.Sent == 0 {
				t.Error("sent nothing")
			}
			if res.Duration > 2*time.Second {
				t.Errorf("ran %v after a 100ms deadline", res.Duration)
			}
			waitArrived(t, p, xdp, res, dropped0)
		})
	}
	t.Run("already-cancelled", func(t *testing.T) {
		_, _, s := livePair(t, AttachDrop, udpTo)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := s.Run(ctx, 10, 0)
		if !errors.Is(err, context.Canceled) || res.Sent != 0 {
			t.Errorf("Run = %+v, %v; want nothing sent and context.Canceled", res, err)
		}
	})
}

// TestLiveSenderToSocket passes live frames to B's stack, whose UDP socket
// receives them: the frame's checksums survive the kernel's checks.
func TestLiveSenderToSocket(t *testing.T) {
	var c *net.UDPConn
	_, xdp, s := livePair(t, AttachPass, toSocket(t, &c))
	const n = 20
	if _, err := s.Run(context.Background(), n, 0); err != nil {
		t.Fatal(err)
	}
	got := readDatagrams(t, c, n+1, 300*time.Millisecond)
	want := make([][]byte, n)
	for i := range want {
		want[i] = []byte("abcde")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("datagrams at B (-want +got):\n%s", diff)
	}
	if seen, _ := xdp.Packets(); seen != n {
		t.Errorf("B's XDP pass program saw %d frames, want %d", seen, n)
	}
}

func TestNewLiveSenderRejectsRunt(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	if s, err := NewLiveSender(p.A, make([]byte, 13)); err == nil {
		s.Close()
		t.Error("accepted a 13-byte frame")
	}
}

func TestXDPCounterClose(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	x, err := AttachPass(p.A)
	if err != nil {
		t.Fatal(err)
	}
	if got := testbedtest.MustAttached(t, p.A); len(got) != 1 {
		t.Errorf("attached to A: %v, want one xdp program", got)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := testbedtest.MustAttached(t, p.A); len(got) != 0 {
		t.Errorf("attached to A after Close: %v", got)
	}
	if _, err := x.Packets(); err == nil {
		t.Error("Packets after Close succeeded")
	}
}

// A pinned sender sends from its CPU (the receiving XDP program counts per
// CPU, and live frames are received on the sending CPU); a CPU that does
// not exist is an error, not a silent unpinned run.
func TestLiveSenderPinned(t *testing.T) {
	p, xdp, s := livePair(t, AttachDrop, udpTo)
	cpu := runtime.NumCPU() - 1
	s.CPU = cpu
	dropped0, err := CountTxDropped(p.A)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), 10_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := waitArrived(t, p, xdp, res, dropped0)
	var perCPU []uint64
	if err := xdp.counter.Lookup(uint32(0), &perCPU); err != nil {
		t.Fatal(err)
	}
	if perCPU[cpu] != got {
		t.Errorf("CPU %d received %d of the %d frames B saw (per CPU: %v)", cpu, perCPU[cpu], got, perCPU)
	}
	s.CPU = 1 << 12
	if _, err := s.Run(context.Background(), 1, 0); err == nil {
		t.Error("pinning to CPU 4096 did not fail")
	}
}

// With varied flows the frames reach B's socket from flows source ports,
// round robin, payload intact (checksum zeroed, which IPv4 UDP allows).
func TestLiveSenderFlows(t *testing.T) {
	var c *net.UDPConn
	_, _, s := livePair(t, AttachPass, toSocket(t, &c))
	const flows, n = 4, 20
	if err := s.SetFlows(flows); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), n, 0); err != nil {
		t.Fatal(err)
	}
	ports := map[int]int{}
	buf := make([]byte, 2048)
	for range n {
		c.SetReadDeadline(time.Now().Add(time.Second))
		m, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(ports), err)
		}
		if string(buf[:m]) != "abcde" {
			t.Errorf("payload %q from %v", buf[:m], from)
		}
		ports[from.Port]++
	}
	want := map[int]int{4000: n / flows, 4001: n / flows, 4002: n / flows, 4003: n / flows}
	if diff := cmp.Diff(want, ports); diff != "" {
		t.Errorf("datagrams per source port (-want +got):\n%s", diff)
	}
	for _, bad := range []int{0, 1 << 17, 62000} {
		if err := s.SetFlows(bad); err == nil {
			t.Errorf("SetFlows(%d) accepted", bad)
		}
	}
}
