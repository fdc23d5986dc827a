package filter

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The differential harness: a small XDP or TC program that copies the
// frame into an ARRAY map value at offset 24 (as the capture programs copy
// it into their scratch map), calls a subprogram named like the capture
// programs' filter stub with the same calling convention, and returns
// whether it accepted. Translated filters are spliced in with Splice.

const (
	stubSymbol    = "rt_filter"
	scratchOffset = 24
	scratchSize   = scratchOffset + DefaultWindow + 16
)

type hookKind int

const (
	hookXDP hookKind = iota
	hookTC
)

func (k hookKind) String() string { return [...]string{"xdp", "tc"}[k] }

// Verdicts the harness programs return.
var verdicts = map[hookKind]struct{ accept, reject, failed uint32 }{
	hookXDP: {accept: 2 /* XDP_PASS */, reject: 1 /* XDP_DROP */, failed: 0 /* XDP_ABORTED */},
	hookTC:  {accept: 0 /* TC_ACT_OK */, reject: 2 /* TC_ACT_SHOT */, failed: 0xffffffff /* TC_ACT_UNSPEC */},
}

// requirePrivileged skips the test unless BPF programs can be loaded; under
// CI=true it fails instead.
func requirePrivileged(t testing.TB, why string) {
	t.Helper()
	msg := ""
	if os.Geteuid() != 0 {
		msg = "not root"
	} else if err := probeBPF(); err != nil {
		msg = fmt.Sprintf("cannot load BPF programs: %v", err)
	}
	if msg == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s needs root and BPF (CI=true, not skipping): %s", why, msg)
	}
	t.Skipf("%s needs root and BPF: %s", why, msg)
}

func probeBPF() error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return err
	}
	return m.Close()
}

type harness struct {
	scratch *ebpf.Map
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	requirePrivileged(t, "running translated filters")
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "rt_test_scratch", Type: ebpf.Array, KeySize: 4, ValueSize: scratchSize, MaxEntries: 1,
	})
	if err != nil {
		t.Fatalf("create scratch map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return &harness{scratch: m}
}

// spec builds the harness program with the accept-all stub. It copies
// min(frame length, copyMax) bytes, as a capture program whose copy window
// is copyMax (1 to DefaultWindow) does.
func (h *harness) spec(kind hookKind, copyMax uint32) *ebpf.ProgramSpec {
	return h.specCalls(kind, copyMax, 1)
}

// specCalls is spec calling the filter calls times in a row (for
// benchmarks: the filter's own cost shows above the harness's); the last
// call's verdict counts.
func (h *harness) specCalls(kind hookKind, copyMax uint32, calls int) *ebpf.ProgramSpec {
	copyMax = max(1, min(copyMax, DefaultWindow))
	v := verdicts[kind]
	// Jumps are patched by label once the layout is known; every jump
	// comes after the only two-slot instruction (the map load), so
	// instruction counts equal slot counts.
	var insns asm.Instructions
	fix := map[int]string{}
	labels := map[string]int{}
	add := func(ins ...asm.Instruction) { insns = append(insns, ins...) }
	jump := func(ins asm.Instruction, label string) {
		fix[len(insns)] = label
		insns = append(insns, ins.WithReference(""))
	}
	label := func(name string) { labels[name] = len(insns) }

	add(
		asm.Mov.Reg(asm.R6, asm.R1).WithSymbol("harness_"+kind.String()),
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, 0),
		asm.FnMapLookupElem.Call(),
	)
	if err := insns[4].AssociateMap(h.scratch); err != nil {
		panic(err)
	}
	jump(asm.JEq.Imm(asm.R0, 0, ""), "failed")
	add(asm.Mov.Reg(asm.R7, asm.R0))
	if kind == hookXDP {
		add(asm.Mov.Reg(asm.R1, asm.R6), asm.FnXdpGetBuffLen.Call(), asm.Mov.Reg(asm.R8, asm.R0))
	} else {
		add(asm.LoadMem(asm.R8, asm.R6, 0, asm.Word)) // __sk_buff.len
	}
	// have = clamp(wire_len, 1, copyMax)
	add(asm.Mov.Reg(asm.R9, asm.R8))
	jump(asm.JLE.Imm(asm.R9, int32(copyMax), ""), "bounded")
	add(asm.Mov.Imm(asm.R9, int32(copyMax)))
	label("bounded")
	jump(asm.JGT.Imm(asm.R9, 0, ""), "nonzero") // JGT, not JNE: verifiers before 6.8 learn no minimum from != 0
	add(asm.Mov.Imm(asm.R9, 1))
	label("nonzero")
	add(
		asm.Add.Imm(asm.R7, scratchOffset),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Mov.Reg(asm.R4, asm.R9),
	)
	if kind == hookXDP {
		add(asm.FnXdpLoadBytes.Call())
	} else {
		add(asm.FnSkbLoadBytes.Call())
	}
	jump(asm.JNE.Imm(asm.R0, 0, ""), "failed")
	for range calls {
		add(
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.Mov.Reg32(asm.R2, asm.R9),
			asm.Mov.Reg32(asm.R3, asm.R8),
			asm.Call.Label(stubSymbol),
		)
	}
	jump(asm.JEq.Imm32(asm.R0, 0, ""), "reject")
	add(asm.Mov.Imm32(asm.R0, int32(v.accept)), asm.Return())
	label("reject")
	add(asm.Mov.Imm32(asm.R0, int32(v.reject)), asm.Return())
	label("failed")
	add(asm.Mov.Imm(asm.R0, int32(v.failed)), asm.Return())
	// The stub: accept everything.
	add(asm.Mov.Imm32(asm.R0, 1).WithSymbol(stubSymbol), asm.Return())

	for at, l := range fix {
		insns[at].Offset = int16(labels[l] - at - 1)
	}
	spec := &ebpf.ProgramSpec{Name: "rt_test_" + kind.String(), Type: ebpf.SchedCLS, Instructions: insns, License: "GPL"}
	if kind == hookXDP {
		// Multi-buffer, like the capture program ("xdp.frags"): BPF_PROG_RUN
		// then takes frames of up to 64 KiB.
		spec.Type, spec.Flags = ebpf.XDP, unix.BPF_F_XDP_HAS_FRAGS
	}
	return spec
}

// load loads the harness with p spliced in (nil: the accept-all stub),
// copying up to DefaultWindow bytes of each frame.
func (h *harness) load(kind hookKind, p *Program) (*ebpf.Program, error) {
	return h.loadWindow(kind, p, DefaultWindow)
}

// loadWindow is load with a smaller copy.
func (h *harness) loadWindow(kind hookKind, p *Program, copyMax uint32) (*ebpf.Program, error) {
	spec := h.spec(kind, copyMax)
	if p != nil {
		if err := p.Splice(spec, stubSymbol); err != nil {
			return nil, err
		}
	}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%s harness: %w\n%+v", kind, err, ve)
		}
		return nil, fmt.Errorf("%s harness: %w", kind, err)
	}
	return prog, nil
}

// run runs one frame (at least 14 bytes) and returns the filter's verdict.
func run(prog *ebpf.Program, kind hookKind, frame []byte) (bool, error) {
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return false, err
	}
	v := verdicts[kind]
	switch ret {
	case v.accept:
		return true, nil
	case v.reject:
		return false, nil
	}
	return false, fmt.Errorf("%s harness returned %d: the copy of the frame failed", kind, ret)
}
