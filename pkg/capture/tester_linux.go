package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/gen"
)

// Tester runs the real capture program, with a filter spliced in, over
// frames with BPF_PROG_RUN, and reports the filter's verdict. It is how
// `ringtap filter test` checks a filter against a file, and how the
// differential tests compare ringtap with libpcap. Nothing is attached.
type Tester struct {
	spec    *ebpf.CollectionSpec
	name    string
	snaplen uint32
	window  uint32 // bytes the filter reads; 0 without a filter
	prog    *ebpf.Program
	maps    *maps
	matched uint64
	buf     []byte
}

// ErrNotRunnable: BPF_PROG_RUN refused the frame (for the TC program, the
// kernel builds an skb and refuses some malformed headers, e.g. an IPv4
// ethertype with less than an IP header).
var ErrNotRunnable = errors.New("the kernel refuses to run the program on this frame")

// MinTestFrame is the shortest frame BPF_PROG_RUN accepts (an Ethernet
// header). Shorter records are padded to it, and the program is told how
// many bytes are real.
const MinTestFrame = 14

// Test runs take at most this many bytes of a frame: an XDP test run holds
// the rest of a page as linear data and 17 page fragments (MAX_SKB_FRAGS);
// a TC one a little less than a page.
const (
	maxTestRunXDP = 3<<10 + 17*4096
	maxTestRunTC  = 3 << 10
)

// NewTester creates the maps and loads the XDP program (hook HookXDP or
// HookAuto) or the TC ingress program (HookTC) with f spliced in for
// linkType; f may be nil (accept everything). snaplen (0: 65535) is the
// capture's snapshot length; the filter sees the bytes it may read (its
// Window), as in a capture.
// SetFilter swaps the filter without recreating the maps.
func NewTester(hook Hook, snaplen uint32, f *Filter, linkType uint16) (_ *Tester, err error) {
	spec, err := gen.LoadCapture()
	if err != nil {
		return nil, fmt.Errorf("read capture programs: %w", err)
	}
	if snaplen == 0 || snaplen > MaxSnapLen {
		snaplen = MaxSnapLen
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}
	k, err := ProbeKernel()
	if err != nil {
		return nil, permission(err)
	}
	cfg := Config{Hook: hook}
	if hook == HookAuto {
		cfg.Hook = HookXDP
	}
	if err := requireKernel(k, &cfg, hook == HookAuto); err != nil {
		return nil, err
	}
	t := &Tester{spec: spec, name: progXDP, snaplen: snaplen}
	if cfg.Hook == HookTC {
		t.name = progTCIngress
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if t.maps, err = newMaps(spec, max(MinRingSize, ceilPow2(2*RecordSize(snaplen))), false); err != nil {
		return nil, permission(err)
	}
	if err := t.SetFilter(f, linkType); err != nil {
		return nil, err
	}
	return t, nil
}

// SetFilter replaces the program with one running f for linkType.
func (t *Tester) SetFilter(f *Filter, linkType uint16) error {
	window, err := filterWindow(f, linkType)
	if err != nil {
		return err
	}
	kind := kindXDP
	if t.name != progXDP {
		kind = kindTCIn
	}
	prog, err := loadProgram(t.spec, t.maps, progParams{
		kind: kind, wakeup: MinRingSize, linkType: linkType, testMeta: true,
		slots: []slotProg{{slot: 0, snaplen: t.snaplen, filter: f}},
	})
	if err != nil {
		return permission(err)
	}
	if t.prog != nil {
		t.prog.Close()
	}
	t.prog = prog
	t.window = window
	return nil
}

// Match runs the program once on frame and says whether the filter accepted
// it. The filter sees len(frame) as the frame's original length.
func (t *Tester) Match(frame []byte) (bool, error) {
	return t.MatchRecord(frame, uint32(len(frame)))
}

// MatchRecord runs the program on a captured record: data are the bytes
// captured, wireLen the frame's original length, which is what `len`,
// `less` and `greater` judge, as libpcap does. A record longer than a
// test run takes is cut to what fits when that holds every byte the
// filter can read, so records of any size run; one shorter than an Ethernet header is padded and the program
// told how many bytes are real.
func (t *Tester) MatchRecord(data []byte, wireLen uint32) (bool, error) {
	wireLen = max(wireLen, uint32(len(data)))
	limit := maxTestRunXDP
	if t.name != progXDP {
		limit = maxTestRunTC
	}
	// The whole record when it fits a test run; else as much as fits,
	// which holds all the filter can read (a TC run parses the headers
	// and refuses some cut too short).
	n := len(data)
	if n > limit {
		if t.window > uint32(limit) {
			return false, fmt.Errorf("%w: the filter may read %d bytes of this %d-byte record, more than a test run takes (%d)", ErrNotRunnable, t.window, len(data), limit)
		}
		n = limit
	}
	frame := data[:n]
	if n < MinTestFrame {
		frame = append(make([]byte, 0, MinTestFrame), frame...)
		frame = frame[:MinTestFrame]
		// 0xff, so that a padded EtherType is none the kernel parses
		// (a TC test run refuses an IPv4 EtherType without an IP
		// header); the program ignores the padding.
		for i := n; i < MinTestFrame; i++ {
			frame[i] = 0xff
		}
	}
	opts := ebpf.RunOptions{Data: frame}
	if t.name == progXDP {
		// struct rt_test_meta as XDP metadata in front of the frame;
		// the context (struct xdp_md) says where the frame starts.
		t.buf = binary.LittleEndian.AppendUint32(t.buf[:0], wireLen)
		t.buf = binary.LittleEndian.AppendUint32(t.buf, uint32(n))
		t.buf = append(t.buf, frame...)
		opts.Data = t.buf
		opts.Context = [6]uint32{0: 8, 1: uint32(len(t.buf))}
	} else {
		// __sk_buff up to cb[4]: cb[0] and cb[1] carry rt_test_meta.
		opts.Context = [17]uint32{12: wireLen, 13: uint32(n)}
	}
	if _, err := t.prog.Run(&opts); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return false, fmt.Errorf("%w: %w", ErrNotRunnable, err)
		}
		return false, fmt.Errorf("run filter: %w", err)
	}
	sum, err := t.maps.counterSum(capKey(0, 0))
	if err != nil {
		return false, err
	}
	hit := sum.Matched != t.matched
	t.matched = sum.Matched
	return hit, nil
}

// Close releases the program and maps.
func (t *Tester) Close() error {
	var errs []error
	if t.prog != nil {
		errs = append(errs, t.prog.Close())
	}
	if t.maps != nil {
		t.maps.close()
	}
	return errors.Join(errs...)
}

// Time runs the program repeat times on frame in the kernel and returns
// the mean time per run (BPF_PROG_RUN's own measurement).
func (t *Tester) Time(frame []byte, repeat uint32) (time.Duration, error) {
	_, d, err := t.prog.Benchmark(frame, int(repeat), nil)
	if err != nil {
		return 0, fmt.Errorf("run program: %w", err)
	}
	return d, nil
}

// Instructions is the size of the loaded program as the kernel holds it
// (after verification).
func (t *Tester) Instructions() (int, error) {
	info, err := t.prog.Info()
	if err != nil {
		return 0, err
	}
	insns, err := info.Instructions()
	if err != nil {
		return 0, err
	}
	return len(insns), nil
}
