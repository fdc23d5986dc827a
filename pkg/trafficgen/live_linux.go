package trafficgen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// LiveSender transmits one frame many times out of a host's veth end with
// BPF_PROG_RUN in XDP live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): the
// kernel runs a program returning XDP_TX on the frame in a loop, as if it
// had arrived on the veth, and each XDP_TX goes out of it to the peer.
//
// The peer must have an XDP program attached (AttachPass, AttachDrop) or
// the frames are dropped on the sender's side. Never attach or detach XDP
// programs on either end while Run is in progress: that has crashed
// kernels. A LiveSender is not safe for concurrent use.
type LiveSender struct {
	h     testbed.Host
	frame []byte
	prog  *ebpf.Program
	// CPU, if >= 0, pins the sending thread to that CPU for the run (the
	// thread's previous affinity is restored afterwards). Frames are then
	// transmitted and received on that CPU, which makes runs comparable.
	CPU int
	// counter numbers the frames of a varied-flows program (SetFlows).
	counter *ebpf.Map
}

// NewLiveSender loads the XDP_TX program for sending frame from h. The
// frame is copied. Live-frames mode refuses frames above about 3.5 KiB (a
// page less headroom and skb_shared_info): Run then fails with EINVAL. A
// frame longer than the link's MTU + 14 is counted as sent but the veth
// drops it.
func NewLiveSender(h testbed.Host, frame []byte) (*LiveSender, error) {
	if len(frame) < 14 {
		return nil, fmt.Errorf("frame of %d bytes is shorter than an ethernet header", len(frame))
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "rt_tg_tx",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpTX),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load xdp_tx program: %w", err)
	}
	return &LiveSender{h: h, frame: append([]byte(nil), frame...), prog: prog, CPU: -1}, nil
}

// xdpMD mirrors struct xdp_md, the context of an XDP test run.
type xdpMD struct {
	Data           uint32
	DataEnd        uint32
	DataMeta       uint32
	IngressIfindex uint32
	RxQueueIndex   uint32
	EgressIfindex  uint32
}

const (
	// firstChunk is the repeat count of the first call at top speed.
	firstChunk = 1 << 16
	// topSpeedCall is the wall time the calls at top speed are sized to
	// last: long enough to amortise the fixed cost of a call, short enough
	// to stop promptly.
	topSpeedCall = 100 * time.Millisecond
	// paceStep is the time's worth of frames a paced call sends.
	paceStep = 50 * time.Millisecond
	// minChunk and maxChunk bound the repeat count of one call.
	minChunk = 1 << 12
	maxChunk = 1 << 24
)

// Run sends n frames (0: until ctx is done) at rate frames per second (0:
// as fast as the kernel can). It runs on a locked OS thread inside the
// host's namespace, with asynchronous signals blocked, as a series of
// BPF_PROG_RUN calls, and checks ctx between calls.
//
// Each call with more than one repetition has a fixed cost (about 20 ms on
// Linux 6.x: the kernel swaps the XDP dispatcher in and out), so at top
// speed calls are sized to last about 100 ms, and a paced run sends 50 ms
// worth of frames per call, back to back, then sleeps: the average rate is
// honoured, not the spacing of frames. A run that falls behind its rate
// catches up with larger calls. Run therefore stops within about 100 ms of
// ctx ending. When ctx ends the run early, Run returns the Result so far
// and ctx.Err(), except with n == 0, where that is the normal end and the
// error is nil.
func (s *LiveSender) Run(ctx context.Context, n, rate uint64) (Result, error) {
	var res Result
	if s.prog == nil {
		return res, errors.New("live sender closed")
	}
	opts := ebpf.RunOptions{
		Data:    s.frame,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context: xdpMD{DataEnd: uint32(len(s.frame)), IngressIfindex: uint32(s.h.Index)},
		//lint:ignore SA1019 Reset is the only way to learn that the library restarted an interrupted run.
		Reset: func() { res.Retries++ },
	}
	var stopped error
	err := s.h.Do(func() error {
		restore, err := blockAsyncSignals()
		if err != nil {
			return err
		}
		defer restore()
		if s.CPU >= 0 {
			unpin, err := pinThread(s.CPU)
			if err != nil {
				return err
			}
			defer unpin()
		}
		start := time.Now()
		defer func() { res.Duration = time.Since(start) }()
		due := func(frames uint64) time.Duration { // when frames are due at rate
			return time.Duration(float64(frames) / float64(rate) * float64(time.Second))
		}
		chunk := uint64(firstChunk)
		for n == 0 || res.Sent < n {
			if err := ctx.Err(); err != nil {
				stopped = err
				return nil
			}
			batch := chunk
			if rate > 0 {
				// Frames due by the end of the next step, less those sent.
				target := uint64(float64(rate) * (time.Since(start) + paceStep).Seconds())
				batch = min(max(target, res.Sent+1)-res.Sent, maxChunk)
			}
			if n > 0 {
				batch = min(batch, n-res.Sent)
			}
			opts.Repeat = uint32(batch)
			callStart := time.Now()
			if _, err := s.prog.Run(&opts); err != nil {
				return fmt.Errorf("bpf_prog_run live frames on %s: %w", s.h.Link, err)
			}
			res.Sent += batch
			if rate > 0 {
				if err := sleepUntil(ctx, start.Add(due(res.Sent))); err != nil {
					stopped = err
					return nil
				}
			} else if took := time.Since(callStart); batch == chunk && took > 0 {
				chunk = uint64(float64(chunk) * float64(topSpeedCall) / float64(took))
				chunk = min(max(chunk, minChunk), maxChunk)
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if stopped != nil && n > 0 && res.Sent < n {
		return res, stopped
	}
	return res, nil
}

// sleepUntil waits for t or ctx, whichever is first.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncSignals are raised by faults in the thread itself; blocking them
// would make the kernel kill the process instead of letting Go panic.
var syncSignals = []unix.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS, unix.SIGABRT}

// sigPerThreadSyscall is the signal the Go runtime uses to run a syscall on
// every thread (syscall.AllThreadsSyscall, setuid and friends); blocking it
// would stall those calls until the run ends.
const sigPerThreadSyscall = unix.Signal(33) // _SIGRTMIN + 1

// blockAsyncSignals blocks every asynchronous signal on the calling
// (locked) thread, so that signals (Go's SIGURG preemption, SIGCHLD,
// SIGPROF...) are delivered to other threads instead of interrupting the
// kernel's run loop. It returns a function restoring the previous mask,
// which must run on the same thread.
func blockAsyncSignals() (func(), error) {
	var set, old unix.Sigset_t
	for i := range set.Val {
		set.Val[i] = ^uint64(0)
	}
	for _, s := range append(syncSignals, sigPerThreadSyscall) {
		set.Val[(s-1)/64] &^= 1 << ((uint(s) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return nil, fmt.Errorf("block signals: %w", err)
	}
	return func() { unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) }, nil
}

// SetFlows makes the sender vary the flow: frame i goes out with the UDP
// source port base+i%flows, where base is the frame's own source port (and
// the UDP checksum zeroed, which IPv4 allows). The frame must be an
// untagged IPv4 UDP frame without IP options; flows 1 sends it unchanged.
func (s *LiveSender) SetFlows(flows int) error {
	if s.prog == nil {
		return errors.New("live sender closed")
	}
	f := s.frame
	if flows < 1 || flows > 1<<16 {
		return fmt.Errorf("flows %d out of range: use 1 to 65536", flows)
	}
	if flows == 1 {
		return nil
	}
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 || f[23] != 17 {
		return errors.New("varied flows need an untagged IPv4 UDP frame without IP options")
	}
	base := int(f[34])<<8 | int(f[35])
	if base+flows > 1<<16 {
		return fmt.Errorf("source port %d + %d flows passes 65535", base, flows)
	}
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Name: "rt_tg_flows", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create flow counter: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "rt_tg_tx_flows",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1), // ctx
			asm.StoreImm(asm.R10, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "tx"),
			asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R7, 1),
			asm.StoreMem(asm.R0, 0, asm.R7, asm.DWord),
			asm.Mod.Imm(asm.R7, int32(flows)),
			asm.Add.Imm(asm.R7, int32(base)),
			asm.HostTo(asm.BE, asm.R7, asm.Half),
			asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 42),
			asm.JGT.Reg(asm.R4, asm.R3, "tx"),
			asm.StoreMem(asm.R2, 34, asm.R7, asm.Half), // UDP source port
			asm.StoreImm(asm.R2, 40, 0, asm.Half),      // UDP checksum: none
			asm.Mov.Imm(asm.R0, xdpTX).WithSymbol("tx"),
			asm.Return(),
		},
	})
	if err != nil {
		counter.Close()
		return fmt.Errorf("load varied-flows xdp_tx program: %w", err)
	}
	s.prog.Close()
	if s.counter != nil {
		s.counter.Close()
	}
	s.prog, s.counter = prog, counter
	return nil
}

// Close releases the program. It is idempotent.
func (s *LiveSender) Close() error {
	if s.counter != nil {
		s.counter.Close()
		s.counter = nil
	}
	if s.prog == nil {
		return nil
	}
	err := s.prog.Close()
	s.prog = nil
	return err
}

// pinThread binds the calling (locked) thread to cpu and returns a function
// that restores its previous affinity.
func pinThread(cpu int) (func(), error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("read cpu affinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("pin sender to cpu %d: %w", cpu, err)
	}
	return func() { _ = unix.SchedSetaffinity(0, &old) }, nil
}
