package capture

import (
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
	prog    *ebpf.Program
	maps    *maps
	matched uint64
}

// ErrNotRunnable: BPF_PROG_RUN refused the frame (for the TC program, the
// kernel builds an skb and refuses some malformed headers, e.g. an IPv4
// ethertype with less than an IP header).
var ErrNotRunnable = errors.New("the kernel refuses to run the program on this frame")

// MinTestFrame is the shortest frame BPF_PROG_RUN accepts (an Ethernet
// header).
const MinTestFrame = 14

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
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count cpus: %w", err)
	}
	if snaplen == 0 || snaplen > MaxSnapLen {
		snaplen = MaxSnapLen
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
	if t.maps, err = newMaps(spec, ncpu, MinRingSize, false); err != nil {
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
	progs, err := loadPrograms(t.spec, t.maps, progParams{
		snaplen: t.snaplen, window: window, wakeup: MinRingSize, linkType: linkType,
	}, f, []string{t.name})
	if err != nil {
		return permission(err)
	}
	if t.prog != nil {
		t.prog.Close()
	}
	t.prog = progs[t.name]
	return nil
}

// Match runs the program once on frame and says whether the filter accepted
// it. The filter sees len(frame) as the frame's original length.
func (t *Tester) Match(frame []byte) (bool, error) {
	if len(frame) < MinTestFrame {
		return false, fmt.Errorf("frame of %d bytes is shorter than the %d bytes BPF_PROG_RUN needs", len(frame), MinTestFrame)
	}
	if _, err := t.prog.Run(&ebpf.RunOptions{Data: frame}); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return false, fmt.Errorf("%w: %w", ErrNotRunnable, err)
		}
		return false, fmt.Errorf("run filter: %w", err)
	}
	sum, err := t.maps.slotCounters(0)
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
