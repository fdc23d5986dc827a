package capture

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/ringtap/ringtap/gen"
)

// Program names in gen/.
const (
	progXDP       = "rt_xdp"
	progTCIngress = "rt_tc_ingress"
	progTCEgress  = "rt_tc_egress"
)

// maps are the kernel objects shared by every interface of a capture.
type maps struct {
	scratch  *ebpf.Map
	rings    *ebpf.Map // ARRAY_OF_MAPS, one ring per CPU
	ringMaps []*ebpf.Map
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

// newMaps creates the scratch, counter and ring maps. With shared, one ring
// serves every CPU's slot of rt_rings.
func newMaps(spec *ebpf.CollectionSpec, ncpu, ringSize int, shared bool) (_ *maps, err error) {
	m := &maps{}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	scratch := spec.Maps["rt_scratch_map"].Copy()
	scratch.MaxEntries = uint32(ncpu)
	if m.scratch, err = ebpf.NewMap(scratch); err != nil {
		return nil, fmt.Errorf("create scratch map: %w", err)
	}
	if m.counters, err = ebpf.NewMap(spec.Maps["rt_counters_map"]); err != nil {
		return nil, fmt.Errorf("create counters map: %w", err)
	}
	rings := spec.Maps["rt_rings"].Copy()
	rings.MaxEntries = uint32(ncpu)
	rings.InnerMap.MaxEntries = uint32(ringSize)
	rings.Contents = nil
	if m.rings, err = ebpf.NewMap(rings); err != nil {
		return nil, fmt.Errorf("create ring array: %w", err)
	}
	for cpu := range ncpu {
		if !shared || cpu == 0 {
			r, err := ebpf.NewMap(&ebpf.MapSpec{Name: "rt_ring", Type: ebpf.RingBuf, MaxEntries: uint32(ringSize)})
			if err != nil {
				return nil, fmt.Errorf("create ring for cpu %d: %w", cpu, err)
			}
			m.ringMaps = append(m.ringMaps, r)
		}
		r := m.ringMaps[len(m.ringMaps)-1]
		if err := m.rings.Put(uint32(cpu), r); err != nil {
			return nil, fmt.Errorf("insert ring for cpu %d: %w", cpu, err)
		}
	}
	return m, nil
}

// slotCounters sums the per-CPU counters of one slot (interface*2 + direction).
func (m *maps) slotCounters(slot uint32) (Counters, error) {
	var per []gen.CaptureRtCounters
	if err := m.counters.Lookup(slot, &per); err != nil {
		return Counters{}, fmt.Errorf("read counters: %w", err)
	}
	var sum Counters
	for _, p := range per {
		sum.add(Counters{Seen: p.Seen, Matched: p.Matched, Captured: p.Captured, Bytes: p.Bytes, Dropped: p.Dropped,
			CopyFailed: p.CopyFailed, FilterFailed: p.FilterFailed})
	}
	return sum, nil
}

// progParams are the load-time constants of one interface's programs.
type progParams struct {
	slot, snaplen, wakeup uint32
	monitor               bool
	linkType              uint16
	// testMeta: the frame's lengths come with it (Tester only).
	testMeta bool
	// window is how many bytes the spliced filter may read; 0 when there
	// is no filter (the program then copies nothing for it).
	window uint32
}

// filterWindow is the window of f for linkType: 0 without a filter,
// MaxWindow when the filter does not say.
func filterWindow(f *Filter, linkType uint16) (uint32, error) {
	if f == nil || f.Splice == nil {
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

// loadPrograms loads the named programs for one interface with its constants
// set, the filter spliced in and the shared maps.
func loadPrograms(base *ebpf.CollectionSpec, m *maps, p progParams, f *Filter, names []string) (map[string]*ebpf.Program, error) {
	spec := base.Copy()
	// The replacements must match the specs they replace.
	spec.Maps["rt_scratch_map"].MaxEntries = m.scratch.MaxEntries()
	rings := spec.Maps["rt_rings"]
	rings.MaxEntries = m.rings.MaxEntries()
	rings.InnerMap.MaxEntries = m.ringMaps[0].MaxEntries()
	rings.Contents = nil
	set := map[string]any{
		"rt_slot": p.slot, "rt_snaplen": p.snaplen, "rt_window": max(p.window, 1),
		"rt_filtered": boolU8(p.window > 0), "rt_wakeup_bytes": p.wakeup, "rt_monitor": boolU8(p.monitor),
		"rt_test_meta": boolU8(p.testMeta),
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
	keep := map[string]*ebpf.ProgramSpec{}
	for _, n := range names {
		ps := spec.Programs[n]
		if f != nil && f.Splice != nil {
			if err := f.Splice(ps, p.linkType); err != nil {
				return nil, fmt.Errorf("splice filter into %s: %w", n, err)
			}
		}
		keep[n] = ps
	}
	spec.Programs = keep
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{
			"rt_scratch_map": m.scratch, "rt_rings": m.rings, "rt_counters_map": m.counters,
		},
	})
	if err != nil {
		return nil, verifierError(err)
	}
	progs := coll.Programs
	coll.Programs = nil
	coll.Close() // the maps are ours; the .rodata map is held by the programs
	return progs, nil
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
