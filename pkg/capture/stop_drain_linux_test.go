//go:build linux

package capture_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// gateWriter holds the first packet it is given until open is closed, as
// a writer stuck on a slow disk or pipe would, and counts what it gets.
type gateWriter struct {
	open    chan struct{}
	mu      sync.Mutex
	packets uint64
	stats   []pcapio.InterfaceStats
}

func newGateWriter() *gateWriter { return &gateWriter{open: make(chan struct{})} }

func (w *gateWriter) WritePacket(*pcapio.Packet) error {
	<-w.open
	w.mu.Lock()
	defer w.mu.Unlock()
	w.packets++
	return nil
}

func (w *gateWriter) Flush() error { return nil }

func (w *gateWriter) WriteInterfaceStats(_ int, s pcapio.InterfaceStats) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats = append(w.stats, s)
	return nil
}

const drainFlush = 10 * time.Millisecond

// mustFillRing sends pairs of frames to B, one that the filter "udp dst
// port 1000" takes and one it rejects, until the rings hold records that
// the readers no longer take (the writer is stuck, so every batch is full
// or waiting for it), then a burst on top, and waits until every frame
// has reached the capture's hook. It returns how many frames it sent.
func mustFillRing(t *testing.T, c *capture.Capture, pair *testbed.Pair) uint64 {
	t.Helper()
	pairOf := append(udpTo(t, pair, 1000, 1, 100), udpTo(t, pair, 2000, 1, 100)...)
	var sent uint64
	send := func(frames [][]byte) {
		t.Helper()
		if err := trafficgen.SendRaw(pair.A, frames); err != nil {
			t.Fatal(err)
		}
		sent += uint64(len(frames))
	}
	// Generous: under emulation (the kernel matrix) sending is slow.
	deadline := time.Now().Add(60 * time.Second)
	for {
		send(pairOf)
		time.Sleep(2 * drainFlush)
		unread, consumed := capture.RingUsage(c)
		if unread > 0 {
			// Five flush intervals interrupt every reader five times:
			// if nothing was consumed, they are all stuck.
			time.Sleep(5 * drainFlush)
			if u, cons := capture.RingUsage(c); cons == consumed && u >= unread {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d frames the readers still empty the rings although the writer takes nothing", sent)
		}
	}
	var burst [][]byte
	for range 50 {
		burst = append(burst, pairOf...)
	}
	send(burst)
	for {
		st, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if seen := st.Interfaces[0].Total().Seen; seen >= sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hook saw %d of the %d frames sent", st.Interfaces[0].Total().Seen, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sent
}

// TestStopDrainsRing: a capture stopped while its writer is stuck and its
// rings hold records it has not read, by Close from another goroutine
// while Run runs or by the interface going away, hands every record to
// the writer before it returns: written = captured = matched, nothing
// lost, and seen = matched + rejected, exactly.
func TestStopDrainsRing(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	tests := []struct {
		name   string
		hook   capture.Hook
		delete bool // delete the interface instead of calling Close
	}{
		{"close-during-run-xdp", capture.HookXDP, false},
		// TCX, or clsact on kernels before 6.6.
		{"close-during-run-tc", capture.HookTC, false},
		{"interface-deleted-xdp", capture.HookXDP, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
			c, err := capture.Open(capture.Config{
				Interfaces: []string{pair.B.Link}, NetNS: pair.B.NSPath, Hook: tt.hook, SnapLen: 128,
				RingSize: 1 << 20, FlushInterval: drainFlush, Filter: mustFilter(t, "udp dst port 1000"),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w := newGateWriter()
			opened := false
			openGate := func() {
				if !opened {
					opened = true
					close(w.open)
				}
			}
			defer openGate()
			ran := make(chan error, 1)
			go func() { ran <- c.Run(context.Background(), w) }()
			sent := mustFillRing(t, c, pair)

			closed := make(chan error, 1)
			if tt.delete {
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
				case <-c.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the capture did not notice that its interface went away")
				}
				if !errors.Is(c.Err(), capture.ErrInterfaceGone) {
					t.Fatalf("capture ended with %v, want ErrInterfaceGone", c.Err())
				}
			} else {
				go func() { closed <- c.Close() }()
				// The stop takes the program out first, then drains.
				deadline := time.Now().Add(10 * time.Second)
				for len(testbedtest.MustAttached(t, pair.B)) > 0 {
					if time.Now().After(deadline) {
						t.Fatal("the program is still attached 10 s after Close")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			time.Sleep(100 * time.Millisecond)
			unread, _ := capture.RingUsage(c)
			if unread == 0 {
				t.Fatal("the rings were empty with the stop under way: the test held no records there")
			}
			select {
			case err := <-ran:
				t.Fatalf("Run returned (%v) while the rings held %d bytes of records for a stuck writer", err, unread)
			case err := <-closed:
				t.Fatalf("Close returned (%v) while the rings held %d bytes of records for a stuck writer", err, unread)
			default:
			}
			t.Logf("stopping with %d bytes of records in the rings", unread)
			openGate()
			select {
			case err := <-ran:
				if tt.delete && !errors.Is(err, capture.ErrInterfaceGone) {
					t.Fatalf("Run returned %v, want ErrInterfaceGone", err)
				}
				if !tt.delete && err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return 10 s after the writer was unblocked")
			}
			if tt.delete {
				closed <- c.Close() // releases the engine of a capture whose interface went away
			}
			if err := <-closed; err != nil {
				t.Fatalf("Close: %v", err)
			}

			st, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			tot := st.Interfaces[0].Total()
			if tot.Seen != sent || tot.Matched != sent/2 || tot.Seen-tot.Matched != sent/2 {
				t.Errorf("seen %d, matched %d: want all %d frames seen, the %d to port 1000 matched and the %d others rejected",
					tot.Seen, tot.Matched, sent, sent/2, sent/2)
			}
			if tot.Matched != tot.Captured+tot.Dropped+tot.CopyFailed || tot.Lost() != 0 {
				t.Errorf("matched %d, captured %d, ring drops %d, copy failures %d: want matched = captured, none lost (the ring holds them all)",
					tot.Matched, tot.Captured, tot.Dropped, tot.CopyFailed)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if st.Written != tot.Captured || w.packets != st.Written {
				t.Errorf("captured %d, written %d, the writer got %d: a record left in the ring was lost", tot.Captured, st.Written, w.packets)
			}
			if len(w.stats) != 1 || w.stats[0].Received != tot.Seen || w.stats[0].Accepted != tot.Matched || w.stats[0].Dropped != tot.Lost() {
				t.Errorf("interface statistics blocks %+v, want one with received %d, accepted %d, dropped %d", w.stats, tot.Seen, tot.Matched, tot.Lost())
			}
		})
	}
}

// TestGenericXDPStopUnderFlood: captures at generic XDP, stopped while
// frames flow, count exactly: each wrote what it captured, matched =
// captured + lost, and two captures with complementary filters saw the
// same frames and matched them all between them (seen = matched +
// rejected). Nothing stays attached.
func TestGenericXDPStopUnderFlood(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	e := mustEngineWith(t, capture.EngineOptions{NetNS: pair.B.NSPath, RingSize: 1 << 22, XDPMode: capture.XDPGeneric})
	on := []string{pair.B.Link}
	ws := []*memCounter{{}, {}}
	caps, errs := e.StartMany([]capture.Request{
		{Spec: capture.Spec{Name: "port-1000", Interfaces: on, Hook: capture.HookXDP, SnapLen: 128, Filter: mustFilter(t, "udp dst port 1000")}, Writer: ws[0]},
		{Spec: capture.Spec{Name: "others", Interfaces: on, Hook: capture.HookXDP, SnapLen: 128, Filter: mustFilter(t, "not udp dst port 1000")}, Writer: ws[1]},
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	if h := caps[0].HookName(); h != "xdp-generic" {
		t.Fatalf("attached at %s, want xdp-generic", h)
	}
	if out := mustIPLink(t, pair.B); !strings.Contains(out, "xdpgeneric") {
		t.Fatalf("ip link shows no generic XDP program while the captures run:\n%s", out)
	}
	// A SendRaw call costs about 10 ms beside its frames: send many per call.
	var frames [][]byte
	for i := range 512 {
		frames = append(frames, udpTo(t, pair, uint16(1000+1000*(i%2)), 1, 100)...)
	}
	stop := make(chan struct{})
	flooded := make(chan error, 1)
	var sent atomic.Uint64
	go func() {
		for {
			select {
			case <-stop:
				flooded <- nil
				return
			default:
			}
			if err := trafficgen.SendRaw(pair.A, frames); err != nil {
				flooded <- err
				return
			}
			sent.Add(uint64(len(frames)))
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for caps[0].Written() < 500 || caps[1].Written() < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("wrote %d and %d packets in 10 s of flood", caps[0].Written(), caps[1].Written())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The flood goes on through the stop.
	beforeStop := sent.Load()
	stopErrs := e.StopMany(caps)
	afterStop := sent.Load()
	close(stop)
	if err := <-flooded; err != nil {
		t.Fatalf("flood: %v", err)
	}
	for i, err := range stopErrs {
		if err != nil {
			t.Fatalf("stop %s: %v", caps[i].Name(), err)
		}
	}
	t.Logf("%d frames sent before the stop, %d during it, %d in all", beforeStop, afterStop-beforeStop, sent.Load())

	var in [2]capture.Counters
	for i, c := range caps {
		st, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		in[i] = st.Interfaces[0].In
		if st.Written != in[i].Captured || ws[i].n.Load() != st.Written {
			t.Errorf("%s: captured %d, written %d, the writer got %d", c.Name(), in[i].Captured, st.Written, ws[i].n.Load())
		}
		if in[i].Matched != in[i].Captured+in[i].Dropped+in[i].CopyFailed {
			t.Errorf("%s: matched %d != captured %d + ring drops %d + copy failures %d", c.Name(), in[i].Matched, in[i].Captured, in[i].Dropped, in[i].CopyFailed)
		}
		t.Logf("%s: %+v", c.Name(), in[i])
	}
	if in[0].Seen != in[1].Seen || in[0].Seen != in[0].Matched+in[1].Matched || in[0].Matched == 0 || in[1].Matched == 0 {
		t.Errorf("seen %d and %d, matched %d and %d: want the same frames seen, each matched by exactly one filter", in[0].Seen, in[1].Seen, in[0].Matched, in[1].Matched)
	}
	if got := testbedtest.MustAttached(t, pair.B); len(got) != 0 {
		t.Errorf("still attached after the stop: %v", got)
	}
	if out := mustIPLink(t, pair.B); strings.Contains(out, "xdp") {
		t.Errorf("ip link shows an XDP program after the stop:\n%s", out)
	}
	if got := e.Interfaces(); len(got) != 0 {
		t.Errorf("the engine still holds %+v after its last captures stopped", got)
	}
}

// mustIPLink is what `ip -details link show` says about h's link.
func mustIPLink(t *testing.T, h testbed.Host) string {
	t.Helper()
	out, err := exec.Command("ip", "-netns", filepath.Base(h.NSPath), "-details", "link", "show", "dev", h.Link).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v\n%s", err, out)
	}
	return string(out)
}

// memCounter counts the packets it is given.
type memCounter struct{ n atomic.Uint64 }

func (w *memCounter) WritePacket(*pcapio.Packet) error { w.n.Add(1); return nil }
func (w *memCounter) Flush() error                     { return nil }
