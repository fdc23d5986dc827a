package capture

import (
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// Test records: a struct rt_record header and 8 bytes, 4 of them
// captured.
const (
	testRecSize = recHeader + 8
	busyData    = "BUSY"
	quickData   = "QUIK"
)

// storeTestRecord writes, at R7, a record header carrying mask and the 4
// bytes of data. Clobbers R1.
func storeTestRecord(mask uint64, data string) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R7, 0, asm.R1, asm.DWord),  // ts_ns
		asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord), // ifindex, dir, flags, cpu
		asm.StoreMem(asm.R7, recHeader, asm.R1, asm.DWord),
		asm.LoadImm(asm.R1, int64(mask), asm.DWord),
		asm.StoreMem(asm.R7, offMask, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, int32(len(data))),
		asm.StoreMem(asm.R7, offWireLen, asm.R1, asm.Word),
		asm.StoreMem(asm.R7, offCapLen, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R1, int32(binary.LittleEndian.Uint32([]byte(data)))),
		asm.StoreMem(asm.R7, recHeader, asm.R1, asm.Word),
	}
}

func loadTestProg(t *testing.T, insns asm.Instructions) (*ebpf.Program, error) {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err == nil {
		t.Cleanup(func() { p.Close() })
	}
	return p, err
}

// busyProg reserves a record for mask in ring and holds it reserved, not
// committed (its header's busy bit set), until gate's value has a
// non-zero first u64 or the monotonic clock passes its second (a
// deadline), then submits it. BPF programs cannot sleep: it spins in
// bpf_loop (Linux 5.17), on its CPU, with preemption off.
func busyProg(t *testing.T, ring, gate *ebpf.Map, mask uint64) (*ebpf.Program, error) {
	t.Helper()
	const maxLoops = 1 << 23 // BPF_MAX_LOOPS
	ptr := &btf.Pointer{Target: &btf.Void{}}
	long := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	cbRef := asm.LoadImm(asm.R2, -1, asm.DWord)
	cbRef.Src = asm.PseudoFunc
	insns := asm.Instructions{
		btf.WithFuncMetadata(asm.LoadMapPtr(asm.R1, ring.FD()), &btf.Func{Name: "busy_main", Linkage: btf.GlobalFunc,
			Type: &btf.FuncProto{Return: long, Params: []btf.FuncParam{{Name: "ctx", Type: ptr}}}}),
		asm.Mov.Imm(asm.R2, testRecSize),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "busy_exit"),
		asm.Mov.Reg(asm.R7, asm.R0),
	}
	insns = append(insns, storeTestRecord(mask, busyData)...)
	insns = append(insns,
		asm.Mov.Imm(asm.R8, 0),
		asm.Mov.Imm(asm.R1, maxLoops).WithSymbol("busy_spin"),
		cbRef.WithReference("busy_cb"),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoop.Call(),
		// Fewer than maxLoops iterations: the callback ended the loop.
		asm.JLT.Imm(asm.R0, maxLoops, "busy_submit"),
		asm.Add.Imm(asm.R8, 1),
		asm.JLT.Imm(asm.R8, 8, "busy_spin"),
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("busy_submit"),
		asm.Mov.Imm(asm.R2, 2), // BPF_RB_FORCE_WAKEUP
		asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("busy_exit"),
		asm.Return(),

		// long busy_cb(u64 index, void *ctx): 1 (stop) once the gate
		// is open or the deadline passed.
		btf.WithFuncMetadata(asm.StoreImm(asm.RFP, -4, 0, asm.Word), &btf.Func{Name: "busy_cb", Linkage: btf.StaticFunc,
			Type: &btf.FuncProto{Return: long, Params: []btf.FuncParam{
				{Name: "index", Type: &btf.Int{Name: "u64", Size: 8}}, {Name: "ctx", Type: ptr}}}}).WithSymbol("busy_cb"),
		asm.LoadMapPtr(asm.R1, gate.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "busy_cb_stop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.JNE.Imm(asm.R1, 0, "busy_cb_stop"),
		asm.LoadMem(asm.R6, asm.R0, 8, asm.DWord),
		asm.FnKtimeGetNs.Call(),
		asm.JGT.Reg(asm.R0, asm.R6, "busy_cb_stop"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("busy_cb_stop"),
		asm.Return(),
	)
	return loadTestProg(t, insns)
}

// quickProg writes a record for mask into ring with bpf_ringbuf_output.
func quickProg(t *testing.T, ring *ebpf.Map, mask uint64) (*ebpf.Program, error) {
	t.Helper()
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R7, asm.RFP),
		asm.Add.Imm(asm.R7, -testRecSize),
	}
	insns = append(insns, storeTestRecord(mask, quickData)...)
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Mov.Imm(asm.R3, testRecSize),
		asm.Mov.Imm(asm.R4, 2), // BPF_RB_FORCE_WAKEUP
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	return loadTestProg(t, insns)
}

// dataWriter keeps the data of the packets it is given.
type dataWriter struct {
	mu   sync.Mutex
	data []string
}

func (w *dataWriter) WritePacket(p *pcapio.Packet) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data = append(w.data, string(p.Data))
	return nil
}

func (w *dataWriter) Flush() error { return nil }

func (w *dataWriter) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.data)
}

func monotonicNow(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// TestFenceWaitsForBusyRecord: the final drain of a stop (the fence)
// waits for a record reserved and not yet committed at the head of a
// ring, and for the committed records behind it, instead of stopping
// there: when it returns, the writer has them all, in ring order.
//
// The record is held busy by a BPF program of the test's, in the
// capture's ring. Stop itself cannot be made to meet such a record: its
// RCU grace period (synchronizeRCU) waits for every BPF program running
// when it starts, the test's included, so a record still busy at the
// fence can only come from a program that started during the grace
// period, a window the test cannot aim at. So the fence, the part of Stop
// that must cope with it, is called directly.
func TestFenceWaitsForBusyRecord(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	if runtime.NumCPU() < 2 {
		// Not a missing feature: the test's design needs a second CPU.
		t.Skip("needs 2 CPUs: the program holding the record busy keeps its CPU until it commits")
	}
	if err := features.HaveProgramHelper(ebpf.SocketFilter, asm.FnLoop); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("holding a record busy needs bpf_loop (Linux 5.17): %v", err)
		}
		t.Fatal(err)
	}
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	e, err := NewEngine(EngineOptions{NetNS: pair.B.NSPath, RingSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	w := &dataWriter{}
	// The filter takes nothing that could arrive: only the test's records
	// reach the writer.
	c, err := e.Start(Spec{Name: "fenced", Interfaces: []string{pair.B.Link}, Hook: HookTC, SnapLen: 64, Filter: testFilter(12, 0x01)}, w)
	if err != nil {
		t.Fatal(err)
	}
	m := c.members[0]
	s := m.iface
	ring, r := s.maps.ringMaps[0], s.readers[0]
	mask := uint64(1) << m.slot

	gate, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	setGate := func(open bool, deadline uint64) {
		v := make([]byte, 16)
		if open {
			v[0] = 1
		}
		binary.LittleEndian.PutUint64(v[8:], deadline)
		if err := gate.Put(uint32(0), v); err != nil {
			t.Fatal(err)
		}
	}
	busy, err := busyProg(t, ring, gate, mask)
	if err != nil {
		t.Fatalf("load the program that holds a record busy: %v", err)
	}
	quick, err := quickProg(t, ring, mask)
	if err != nil {
		t.Fatalf("load the program that writes a record: %v", err)
	}

	// Hold a record busy (5 s at most, if the test fails first).
	setGate(false, monotonicNow(t)+uint64(5*time.Second))
	defer setGate(true, 0)
	start := r.ProducerPos()
	held := make(chan error, 1)
	go func() {
		_, err := busy.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
		held <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); r.ProducerPos() == start; {
		if time.Now().After(deadline) {
			t.Fatal("the busy program reserved no record in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	// Three committed records behind it.
	for range 3 {
		if _, err := quick.Run(&ebpf.RunOptions{Data: make([]byte, 64)}); err != nil {
			t.Fatal(err)
		}
	}
	fenced := make(chan error, 1)
	go func() { fenced <- s.fence() }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-held:
		t.Fatalf("the busy program returned (%v) before the test opened its gate", err)
	case err := <-fenced:
		t.Fatalf("the fence returned (%v) with a busy record at the head of the ring", err)
	default:
	}
	if got := w.got(); len(got) != 0 {
		t.Fatalf("the writer got %q while the record before them was busy", got)
	}
	if r.ConsumerPos() != start {
		t.Fatalf("the reader moved past the busy record: consumer at %d, busy record at %d", r.ConsumerPos(), start)
	}

	setGate(true, 0)
	select {
	case err := <-held:
		if err != nil {
			t.Fatalf("run the busy program: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the busy program did not return 5 s after its gate opened")
	}
	select {
	case err := <-fenced:
		if err != nil {
			t.Fatalf("fence: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fence did not return 5 s after the busy record was committed")
	}
	want := []string{busyData, quickData, quickData, quickData}
	if got := w.got(); !slices.Equal(got, want) {
		t.Errorf("when the fence returned, the writer had %q, want %q", got, want)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
}
