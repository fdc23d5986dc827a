//go:build linux

package ringbuf

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
)

// skipOrFail skips a privileged test for a reason outside the code (not root,
// no BPF), except under CI=true, where it fails.
func skipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}

var (
	bpfOnce sync.Once
	bpfErr  error
)

// requireBPF skips (or, under CI, fails) unless we may create ring buffers
// and load socket filter programs. The probe runs once per test binary.
func requireBPF(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(tb, "needs root (CAP_BPF, CAP_NET_ADMIN) to create BPF maps and programs")
	}
	bpfOnce.Do(func() {
		// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
		if err := rlimit.RemoveMemlock(); err != nil {
			bpfErr = fmt.Errorf("lift RLIMIT_MEMLOCK: %w", err)
			return
		}
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize())})
		if err != nil {
			bpfErr = fmt.Errorf("create a BPF ring buffer: %w", err)
			return
		}
		m.Close()
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.SocketFilter,
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, progRet), asm.Return()},
			License:      "GPL",
		})
		if err != nil {
			bpfErr = fmt.Errorf("load a socket filter program: %w", err)
			return
		}
		defer p.Close()
		if _, err := p.Run(&ebpf.RunOptions{Data: pktIn}); err != nil {
			bpfErr = fmt.Errorf("BPF_PROG_RUN: %w", err)
		}
	})
	if bpfErr != nil {
		skipOrFail(tb, "BPF unavailable: %v", bpfErr)
	}
}

const (
	dataValueSize = 4096    // largest record the sized program writes
	maxSeq        = 1 << 16 // entries of the sizes table
	noWakeup      = 1       // BPF_RB_NO_WAKEUP
	progRet       = 0
)

// Layout of the counter map's only value.
const (
	offSeq   = 0  // u64: runs so far (the next record's seq)
	offFails = 8  // u64: failed bpf_ringbuf_output/reserve calls
	offFlags = 16 // u64: flags for bpf_ringbuf_output
	ctrSize  = 24
)

// testEnv is a ring buffer and the maps of the test programs. Every run of a
// program takes a sequence number from the counter map, so records can be
// checked for content and order whatever the number of runs.
type testEnv struct {
	tb      testing.TB
	ring    *ebpf.Map
	counter *ebpf.Map // ARRAY[1] of ctrSize bytes
	sizes   *ebpf.Map // ARRAY[maxSeq] of u32: record length for each seq
	data    *ebpf.Map // ARRAY[1] of dataValueSize bytes: the record source
}

func newRingMap(tb testing.TB, size int) *ebpf.Map {
	tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(size)})
	if err != nil {
		tb.Fatalf("create ring buffer: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

func newTestEnv(tb testing.TB, ringSize int) *testEnv {
	tb.Helper()
	requireBPF(tb)
	e := &testEnv{tb: tb}
	newMap := func(spec *ebpf.MapSpec) *ebpf.Map {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			tb.Fatalf("create %v map: %v", spec.Type, err)
		}
		tb.Cleanup(func() { m.Close() })
		return m
	}
	e.ring = newMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(ringSize)})
	e.counter = newMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: ctrSize, MaxEntries: 1})
	e.sizes = newMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: maxSeq})
	e.data = newMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: dataValueSize, MaxEntries: 1})
	pattern := make([]byte, dataValueSize)
	for i := range pattern {
		pattern[i] = patternByte(i)
	}
	if err := e.data.Put(uint32(0), pattern); err != nil {
		tb.Fatal(err)
	}
	return e
}

func patternByte(i int) byte { return byte(i*7 + 3) }

// wantRecord is what the output program writes for seq: the data value,
// whose first 4 bytes it overwrites with seq, cut to size.
func wantRecord(seq uint32, size int) []byte {
	p := make([]byte, max(size, 4))
	for i := range p {
		p[i] = patternByte(i)
	}
	binary.LittleEndian.PutUint32(p, seq)
	return p[:size]
}

func (e *testEnv) counters() (seq, fails uint64) {
	e.tb.Helper()
	v := make([]byte, ctrSize)
	if err := e.counter.Lookup(uint32(0), &v); err != nil {
		e.tb.Fatal(err)
	}
	return binary.LittleEndian.Uint64(v[offSeq:]), binary.LittleEndian.Uint64(v[offFails:])
}

// setFlags sets the flags the output program passes to bpf_ringbuf_output.
func (e *testEnv) setFlags(flags uint64) {
	e.tb.Helper()
	v := make([]byte, ctrSize)
	if err := e.counter.Lookup(uint32(0), &v); err != nil {
		e.tb.Fatal(err)
	}
	binary.LittleEndian.PutUint64(v[offFlags:], flags)
	if err := e.counter.Put(uint32(0), v); err != nil {
		e.tb.Fatal(err)
	}
}

// setSizes sets the record length of seqs from, from+1, ...
func (e *testEnv) setSizes(from int, sizes []int) {
	e.tb.Helper()
	keys := make([]uint32, len(sizes))
	vals := make([]uint32, len(sizes))
	for i, s := range sizes {
		if s > dataValueSize {
			e.tb.Fatalf("size %d > %d", s, dataValueSize)
		}
		keys[i], vals[i] = uint32(from+i), uint32(s)
	}
	if _, err := e.sizes.BatchUpdate(keys, vals, nil); err != nil {
		e.tb.Fatalf("set record sizes: %v", err)
	}
}

// counterPrologue loads the counter value into R6 and the seq into R7, and
// stores seq+1. Jumps to "exit" if the lookup fails.
func (e *testEnv) counterPrologue() asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, e.counter.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.LoadMem(asm.R7, asm.R6, offSeq, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R6, offSeq, asm.R1, asm.DWord),
	}
}

// countFailure increments the fails counter (R6 = counter value).
var countFailure = asm.Instructions{
	asm.LoadMem(asm.R1, asm.R6, offFails, asm.DWord),
	asm.Add.Imm(asm.R1, 1),
	asm.StoreMem(asm.R6, offFails, asm.R1, asm.DWord),
}

var epilogue = asm.Instructions{
	asm.Mov.Imm(asm.R0, progRet).WithSymbol("exit"),
	asm.Return(),
}

func (e *testEnv) load(insns asm.Instructions) *ebpf.Program {
	e.tb.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		Instructions: insns,
		License:      "GPL",
	})
	if err != nil {
		e.tb.Fatalf("load test program: %v", err)
	}
	e.tb.Cleanup(func() { prog.Close() })
	return prog
}

// outputProg writes, per run, a record of sizes[seq] bytes with
// bpf_ringbuf_output: the data value with seq in its first 4 bytes.
func (e *testEnv) outputProg() *ebpf.Program {
	insns := e.counterPrologue()
	insns = append(insns,
		// R8 = sizes[seq], at most dataValueSize.
		asm.StoreMem(asm.RFP, -8, asm.R7, asm.Word),
		asm.LoadMapPtr(asm.R1, e.sizes.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.Word),
		asm.JGT.Imm(asm.R8, dataValueSize, "exit"),
		// R9 = data value; its first 4 bytes = seq.
		asm.LoadMapPtr(asm.R1, e.data.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.StoreMem(asm.R9, 0, asm.R7, asm.Word),
		// bpf_ringbuf_output(ring, R9, R8, flags)
		asm.LoadMapPtr(asm.R1, e.ring.FD()),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.LoadMem(asm.R4, asm.R6, offFlags, asm.DWord),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
	)
	insns = append(insns, countFailure...)
	return e.load(append(insns, epilogue...))
}

const discardRecSize = 40

// discardProg reserves a discardRecSize record per run, writes seq (u64) and
// a pattern into it, and discards it if seq%3 == 0, else submits it.
func (e *testEnv) discardProg() *ebpf.Program {
	insns := e.counterPrologue()
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, e.ring.FD()),
		asm.Mov.Imm(asm.R2, discardRecSize),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "fail"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.StoreMem(asm.R8, 0, asm.R7, asm.DWord),
		// (cilium/ebpf's asm has no 8-byte store of an immediate.)
		asm.Mov.Imm(asm.R1, 0x11111111),
		asm.StoreMem(asm.R8, 8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0x22222222),
		asm.StoreMem(asm.R8, 16, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0x33333333),
		asm.StoreMem(asm.R8, 24, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0x44444444),
		asm.StoreMem(asm.R8, 32, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Mod.Imm(asm.R1, 3),
		asm.JEq.Imm(asm.R1, 0, "discard"),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRingbufSubmit.Call(),
		asm.Ja.Label("exit"),
		asm.Mov.Reg(asm.R1, asm.R8).WithSymbol("discard"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRingbufDiscard.Call(),
		asm.Ja.Label("exit"),
	)
	insns = append(insns, countFailure...)
	insns[len(insns)-len(countFailure)] = insns[len(insns)-len(countFailure)].WithSymbol("fail")
	return e.load(append(insns, epilogue...))
}

func wantDiscardRecord(seq uint64) []byte {
	p := make([]byte, discardRecSize)
	binary.LittleEndian.PutUint64(p, seq)
	for i, v := range []uint64{0x11111111, 0x22222222, 0x33333333, 0x44444444} {
		binary.LittleEndian.PutUint64(p[8+8*i:], v)
	}
	return p
}

// stackProg writes one size-byte record per run from a stack buffer (no
// maps besides the ring): the benchmark's producer. size is a multiple of 8,
// at most 256.
func stackProg(tb testing.TB, ring *ebpf.Map, size int) *ebpf.Program {
	tb.Helper()
	var insns asm.Instructions
	for off := 0; off < size; off += 8 {
		insns = append(insns,
			asm.Mov.Imm(asm.R1, int32(off)*0x010101),
			asm.StoreMem(asm.RFP, int16(off-size), asm.R1, asm.DWord))
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(-size)),
		asm.Mov.Imm(asm.R3, int32(size)),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, progRet),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		tb.Fatalf("load test program: %v", err)
	}
	tb.Cleanup(func() { prog.Close() })
	return prog
}

var pktIn = make([]byte, 64) // test runs of skb programs need at least an Ethernet header

// runOnce runs prog n times, one BPF_PROG_RUN each: with Repeat > 1 an
// interrupted run is restarted from scratch by the library, which would
// produce extra records.
func runOnce(tb testing.TB, prog *ebpf.Program, n int) {
	tb.Helper()
	for range n {
		if _, err := prog.Run(&ebpf.RunOptions{Data: pktIn}); err != nil {
			tb.Fatalf("run program: %v", err)
		}
	}
}

// runRepeat runs prog about n times in one BPF_PROG_RUN (more if the run is
// interrupted and restarted).
func runRepeat(tb testing.TB, prog *ebpf.Program, n int) {
	tb.Helper()
	if _, err := prog.Run(&ebpf.RunOptions{Data: pktIn, Repeat: uint32(n)}); err != nil {
		tb.Fatalf("run program: %v", err)
	}
}

func stride(n int) int { return (n + hdrSize + 7) &^ 7 }

func unsafePointer(p []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(p)) }
