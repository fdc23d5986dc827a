package capture

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ringtap/ringtap/gen"
)

// Program names in gen/.
const (
	progXDP       = "rt_xdp"
	progTCIngress = "rt_tc_ingress"
	progTCEgress  = "rt_tc_egress"
)

// Program kinds: one program of each kind per interface at most, shared by
// every capture there (RT_KIND_* in bpf/capture.h).
const (
	kindXDP = iota
	kindTCIn
	kindTCOut
	numKinds
)

var kindProg = [numKinds]string{progXDP, progTCIngress, progTCEgress}

// Counter keys (RT_CAP_KEY, RT_PROG_KEY in bpf/capture.h).
func capKey(slot, dir int) uint32 { return uint32(slot*2 + dir) }
func progKey(i int) uint32        { return uint32(2*MaxCapturesPerInterface + i) }

// progKeys is how many program instances' counters an interface holds
// (RT_PROG_KEYS).
const progKeys = 256

// kindDir is the direction of the frames a program kind sees.
func kindDir(kind int) int {
	if kind == kindTCOut {
		return 1
	}
	return 0
}

// maps are the kernel objects of one interface, shared by its programs.
type maps struct {
	scratch  *ebpf.Map
	rings    *ebpf.Map // ARRAY_OF_MAPS, one ring per online CPU
	ringMaps []*ebpf.Map
	ringCPUs []int // the CPU of each ring (-1: shared by all)
	counters *ebpf.Map
}

func (m *maps) close() {
	for _, r := range m.ringMaps {
		r.Close()
	}
	for _, x := range []*ebpf.Map{m.scratch, m.rings, m.counters} {
		if x != nil {
			x.Close()
		}
	}
}

// newMaps creates the scratch, counter and ring maps. Rings are created for
// the online CPUs only (a CPU brought online later finds no ring and its
// matched frames count as dropped); with shared, one ring serves them all.
func newMaps(spec *ebpf.CollectionSpec, ringSize int, shared bool) (_ *maps, err error) {
	possible, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count cpus: %w", err)
	}
	online, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	m := &maps{}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	scratch := spec.Maps["rt_scratch_map"].Copy()
	scratch.MaxEntries = uint32(possible)
	if m.scratch, err = ebpf.NewMap(scratch); err != nil {
		return nil, fmt.Errorf("create scratch map: %w", err)
	}
	if m.counters, err = ebpf.NewMap(spec.Maps["rt_counters_map"]); err != nil {
		return nil, fmt.Errorf("create counters map: %w", err)
	}
	rings := spec.Maps["rt_rings"].Copy()
	rings.MaxEntries = uint32(possible)
	rings.InnerMap.MaxEntries = uint32(ringSize)
	rings.Contents = nil
	if m.rings, err = ebpf.NewMap(rings); err != nil {
		return nil, fmt.Errorf("create ring array: %w", err)
	}
	for _, cpu := range online {
		if cpu >= possible {
			continue
		}
		if !shared || len(m.ringMaps) == 0 {
			r, err := ebpf.NewMap(&ebpf.MapSpec{Name: "rt_ring", Type: ebpf.RingBuf, MaxEntries: uint32(ringSize)})
			if err != nil {
				return nil, fmt.Errorf("create ring for cpu %d: %w", cpu, err)
			}
			m.ringMaps = append(m.ringMaps, r)
			m.ringCPUs = append(m.ringCPUs, cpu)
		}
		r := m.ringMaps[len(m.ringMaps)-1]
		if err := m.rings.Put(uint32(cpu), r); err != nil {
			return nil, fmt.Errorf("insert ring for cpu %d: %w", cpu, err)
		}
	}
	if shared {
		m.ringCPUs[0] = -1
	}
	return m, nil
}

// zeroCounters resets the per-CPU counters at key (no program may use it).
func (m *maps) zeroCounters(key uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	if err := m.counters.Put(key, make([]gen.CaptureRtCounters, n)); err != nil {
		return fmt.Errorf("reset counters: %w", err)
	}
	return nil
}

// counters sums the per-CPU counters at key.
func (m *maps) counterSum(key uint32) (Counters, error) {
	var per []gen.CaptureRtCounters
	if err := m.counters.Lookup(key, &per); err != nil {
		return Counters{}, fmt.Errorf("read counters: %w", err)
	}
	var sum Counters
	for _, p := range per {
		sum.add(Counters{Seen: p.Seen, Matched: p.Matched, Captured: p.Captured, Bytes: p.Bytes, Dropped: p.Dropped,
			CopyFailed: p.CopyFailed, FilterFailed: p.FilterFailed})
	}
	return sum, nil
}

// slotProg is one capture's part in a program: its slot, snapshot length
// and filter (nil: everything).
type slotProg struct {
	slot    int
	snaplen uint32
	filter  *Filter
}

// progParams are the load-time constants of one program.
type progParams struct {
	kind     int
	key      int    // the instance's counters: progKey(key)
	name     string // the program, when not kind's (benchmarks)
	linkType uint16
	wakeup   uint32
	monitor  bool
	// testMeta: the frame's lengths come with it (Tester only).
	testMeta bool
	// logLevel: the verifier log wanted (tests measuring its work).
	logLevel ebpf.LogLevel
	slots    []slotProg
}

// filterWindow is the window of f for linkType: 0 without a filter,
// MaxWindow when the filter does not say.
func filterWindow(f *Filter, linkType uint16) (uint32, error) {
	if f == nil || f.Insns == nil {
		return 0, nil
	}
	if f.Window == nil {
		return MaxWindow, nil
	}
	w, err := f.Window(linkType)
	if err != nil {
		return 0, err
	}
	return max(1, min(w, MaxWindow)), nil
}

// loadProgram builds and loads the program of one kind for the captures in
// p.slots, with the interface's maps.
func loadProgram(base *ebpf.CollectionSpec, m *maps, p progParams) (*ebpf.Program, error) {
	spec := base.Copy()
	// The replacements must match the specs they replace.
	spec.Maps["rt_scratch_map"].MaxEntries = m.scratch.MaxEntries()
	rings := spec.Maps["rt_rings"]
	rings.MaxEntries = m.rings.MaxEntries()
	rings.InnerMap.MaxEntries = m.ringMaps[0].MaxEntries()
	rings.Contents = nil

	var (
		snaps   [MaxCapturesPerInterface]uint32
		all     uint64
		window  uint32
		filters []slotFilter
	)
	for _, s := range p.slots {
		snaps[s.slot] = s.snaplen
		w, err := filterWindow(s.filter, p.linkType)
		if err != nil {
			return nil, err
		}
		if w == 0 {
			all |= 1 << s.slot
			continue
		}
		insns, err := s.filter.Insns(p.linkType)
		if err != nil {
			return nil, err
		}
		window = max(window, w)
		filters = append(filters, slotFilter{slot: s.slot, insns: insns})
	}
	set := map[string]any{
		"rt_snaps": snaps, "rt_all": all, "rt_window": max(window, 1),
		"rt_filtered": boolU8(len(filters) > 0), "rt_wakeup_bytes": p.wakeup, "rt_monitor": boolU8(p.monitor),
		"rt_test_meta": boolU8(p.testMeta), "rt_prog_key": progKey(p.key),
	}
	for name, v := range set {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("program has no constant %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	name := kindProg[p.kind]
	if p.name != "" {
		name = p.name
	}
	ps := spec.Programs[name]
	if len(filters) > 0 {
		if err := spliceFilters(ps, filters); err != nil {
			return nil, fmt.Errorf("splice filters into %s: %w", name, err)
		}
	}
	spec.Programs = map[string]*ebpf.ProgramSpec{name: ps}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{
			"rt_scratch_map": m.scratch, "rt_rings": m.rings, "rt_counters_map": m.counters,
		},
		Programs: ebpf.ProgramOptions{LogLevel: p.logLevel},
	})
	if err != nil {
		return nil, verifierError(err)
	}
	prog := coll.Programs[name]
	delete(coll.Programs, name)
	coll.Close() // the maps are ours; the .rodata map is held by the program
	return prog, nil
}

// slotFilter is a translated filter and the slot whose bit it sets.
type slotFilter struct {
	slot  int
	insns asm.Instructions
}

// spliceFilters replaces the body of the FilterStub function of ps with a
// dispatcher that calls each filter, added as a function of its own, and
// returns the mask of slots whose filter accepted:
//
//	r6..r8 = r1..r3; r9 = 0
//	for each filter:
//	    r1..r3 = r6..r8; call rt_filter_<slot>
//	    *(u32 *)(r6 - 4) = w0; w0 = *(u32 *)(r6 - 4)
//	    r9 |= ((w0 | -w0) >> 31) << slot
//	r0 = r9
//
// Built for the verifier: a filter returns a known constant on each of its
// paths, and verifiers before 6.3 mark every scalar precise once precision
// tracking meets a subprogram call, so a branch per verdict with a known
// mask would be followed 2^n times. Laundering the verdict through the
// scratch value's unused header (r6 points at the frame inside it) makes it
// unknown, and the bit is set without a branch: one path per filter, on
// every kernel.
//
// Every function keeps the stub's BTF func info (renamed) and source line,
// which the kernel needs for each subprogram when the program has BTF.
func spliceFilters(ps *ebpf.ProgramSpec, filters []slotFilter) error {
	insns := ps.Instructions
	start := -1
	for i, ins := range insns {
		if ins.Symbol() == FilterStub {
			start = i
			break
		}
	}
	if start < 0 {
		return fmt.Errorf("program %s has no function %s to replace", ps.Name, FilterStub)
	}
	end := len(insns)
	for i := start + 1; i < len(insns); i++ {
		if insns[i].Symbol() != "" {
			end = i
			break
		}
	}
	first := insns[start]
	fn, src := btf.FuncMetadata(&first), first.Source()
	mark := func(ins asm.Instruction, sym string) asm.Instruction {
		ins = ins.WithSymbol(sym)
		if fn != nil {
			f := *fn
			f.Name = sym
			if sym == FilterStub {
				ins = btf.WithFuncMetadata(ins, fn)
			} else {
				ins = btf.WithFuncMetadata(ins, &f)
			}
		}
		if src != nil {
			ins = ins.WithSource(src)
		}
		return ins
	}
	body := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), asm.Mov.Reg(asm.R7, asm.R2), asm.Mov.Reg(asm.R8, asm.R3), asm.Mov.Imm(asm.R9, 0),
	}
	var funcs asm.Instructions
	for _, f := range filters {
		sym := fmt.Sprintf("%s_%d", FilterStub, f.slot)
		body = append(body, asm.Mov.Reg(asm.R1, asm.R6), asm.Mov.Reg(asm.R2, asm.R7), asm.Mov.Reg(asm.R3, asm.R8),
			asm.Call.Label(sym),
			asm.StoreMem(asm.R6, -4, asm.R0, asm.Word), asm.LoadMem(asm.R0, asm.R6, -4, asm.Word),
			asm.Mov.Reg32(asm.R1, asm.R0), asm.Neg.Imm32(asm.R1, 0), asm.Or.Reg32(asm.R1, asm.R0), asm.RSh.Imm32(asm.R1, 31),
			asm.LSh.Imm(asm.R1, int32(f.slot)), asm.Or.Reg(asm.R9, asm.R1))
		fb := make(asm.Instructions, len(f.insns))
		copy(fb, f.insns)
		fb[0] = mark(fb[0], sym)
		funcs = append(funcs, fb...)
	}
	body = append(body, asm.Mov.Reg(asm.R0, asm.R9), asm.Return())
	body[0] = mark(body[0], FilterStub)
	out := make(asm.Instructions, 0, len(insns)-(end-start)+len(body)+len(funcs))
	out = append(out, insns[:start]...)
	out = append(out, body...)
	out = append(out, insns[end:]...)
	out = append(out, funcs...)
	ps.Instructions = out
	return nil
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
