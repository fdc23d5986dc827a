package filter

import (
	"math"

	"golang.org/x/net/bpf"
)

// block is a basic block of a classic program: instructions [start, end).
type block struct {
	start, end int
	succs      []int // pcs of the blocks that can follow; none after a return
	preds      []*block
	reachable  bool
	// absEnd is the largest end (offset + size) of the block's packet
	// loads at constant offsets that can be in bounds (within the
	// window); 0 if it has none.
	absEnd uint32
}

// flow is the control flow of a classic program.
type flow struct {
	prog    []bpf.RawInstruction
	window  uint32
	blocks  []*block // in pc order
	byStart map[int]*block
	loops   bool // a reachable backward jump (libpcap's protochain)
}

// neverInBounds reports a packet load that no frame of at most window
// bytes can satisfy: its constant part alone ends beyond the window. Such
// a load always rejects, so it ends its block.
func neverInBounds(in bpf.RawInstruction, window uint32) bool {
	return isPacketLoad(in.Op) && uint64(in.K)+uint64(loadBytes(in.Op)) > uint64(window)
}

// analyze splits a checked program into basic blocks and finds the
// reachable ones. A load that can never be in bounds ends its block with
// no successor.
func analyze(prog []bpf.RawInstruction, window uint32) *flow {
	leader := make([]bool, len(prog)+1)
	leader[0] = true
	for pc, in := range prog {
		if c := in.Op & 0x07; c == classJMP || c == classRET || neverInBounds(in, window) {
			leader[pc+1] = true
			if c == classJMP {
				for _, s := range successors(in, pc) {
					leader[s] = true
				}
			}
		}
	}
	f := &flow{prog: prog, window: window, byStart: map[int]*block{}}
	for pc := 0; pc < len(prog); {
		b := &block{start: pc, end: pc + 1}
		for b.end < len(prog) && !leader[b.end] {
			b.end++
		}
		last := prog[b.end-1]
		if !neverInBounds(last, window) {
			b.succs = successors(last, b.end-1)
		}
		for _, in := range prog[b.start:b.end] {
			if (in.Op&0xe0 == modeABS || in.Op&0xe0 == modeMSH) && isPacketLoad(in.Op) && !neverInBounds(in, window) {
				b.absEnd = max(b.absEnd, in.K+loadBytes(in.Op))
			}
		}
		f.blocks = append(f.blocks, b)
		f.byStart[pc] = b
		pc = b.end
	}
	// Reachability, then predecessors among reachable blocks.
	stack := []*block{f.blocks[0]}
	f.blocks[0].reachable = true
	for len(stack) > 0 {
		b := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, s := range b.succs {
			if sb := f.byStart[s]; !sb.reachable {
				sb.reachable = true
				stack = append(stack, sb)
			}
		}
	}
	for _, b := range f.blocks {
		if !b.reachable {
			continue
		}
		for _, s := range b.succs {
			f.byStart[s].preds = append(f.byStart[s].preds, b)
			if s <= b.start {
				f.loops = true
			}
		}
	}
	return f
}

// checkAt is, for merged bounds checks, how many bytes the check at the
// top of each reachable block demands. It must cover the block's own
// constant-offset loads (absEnd); it may demand more when every path from
// the block would reject a shorter frame anyway, and it is worth no more
// than the furthest any load from there can reach:
//
//   - ant, a backward must-analysis (greatest fixpoint): the frame length
//     below which every path from the block's top rejects, because it loads
//     beyond the frame or returns 0 ("ret #0"; paths that cannot accept,
//     like a load that never fits, count as the whole window). A shorter
//     frame may be rejected before the block runs: nothing before the
//     failing load or the "ret #0" has any visible effect.
//   - reach, a backward may-analysis (least fixpoint): the furthest end of
//     a constant-offset load on any path from the block's top.
//
// checkAt = min(ant, reach) >= absEnd.
func (f *flow) checkAt() map[*block]uint32 {
	ant, reach := map[*block]uint32{}, map[*block]uint32{}
	for _, b := range f.blocks {
		if b.reachable {
			ant[b] = f.window
		}
	}
	for changed := true; changed; {
		changed = false
		for i := len(f.blocks) - 1; i >= 0; i-- {
			b := f.blocks[i]
			if !b.reachable {
				continue
			}
			a, r := b.absEnd, b.absEnd
			switch last := f.prog[b.end-1]; {
			case last.Op == classRET|retK && last.K == 0:
				a = f.window
			case last.Op&0x07 == classRET:
			case len(b.succs) == 0: // a load that never fits
				a = f.window
			default:
				succ := f.window
				for _, s := range b.succs {
					succ = min(succ, ant[f.byStart[s]])
					r = max(r, reach[f.byStart[s]])
				}
				a = max(a, succ)
			}
			if a != ant[b] || r != reach[b] {
				ant[b], reach[b], changed = a, r, true
			}
		}
	}
	at := map[*block]uint32{}
	for b := range ant {
		at[b] = min(ant[b], reach[b])
	}
	return at
}

// guarantees computes, for merged bounds checks, how many bytes every path
// into each block has already checked (a forward must-analysis, greatest
// fixpoint): a block with a check at its top guarantees need[block] after
// it. Returns the guarantee at each block's entry.
func (f *flow) guarantees(need map[*block]uint32) map[*block]uint32 {
	in := map[*block]uint32{}
	for _, b := range f.blocks {
		if b.reachable {
			in[b] = math.MaxUint32
		}
	}
	in[f.blocks[0]] = 0
	for changed := true; changed; {
		changed = false
		for _, b := range f.blocks[1:] {
			if !b.reachable {
				continue
			}
			g := uint32(math.MaxUint32)
			for _, p := range b.preds {
				g = min(g, max(in[p], need[p]))
			}
			if g != in[b] {
				in[b], changed = g, true
			}
		}
	}
	return in
}

// span is an interval of uint32 values, held in uint64s.
type span struct{ lo, hi uint64 }

const u32max = math.MaxUint32

var full = span{0, u32max}

func exact(v uint32) span { return span{uint64(v), uint64(v)} }

func (s span) union(o span) span { return span{min(s.lo, o.lo), max(s.hi, o.hi)} }

// capped is [lo, hi], or every value when hi does not fit in 32 bits (the
// operation may have wrapped).
func capped(lo, hi uint64) span {
	if hi > u32max {
		return full
	}
	return span{lo, hi}
}

// state is what the range analysis knows at a point: A, X and M[].
type state struct {
	a, x span
	m    [memWords]span
}

func (s state) union(o state) state {
	s.a, s.x = s.a.union(o.a), s.x.union(o.x)
	for i := range s.m {
		s.m[i] = s.m[i].union(o.m[i])
	}
	return s
}

// widen sets every component that grew from old to now to all values.
func widen(old, now state) state {
	w := func(o, n span) span {
		if o != n {
			return full
		}
		return n
	}
	now.a, now.x = w(old.a, now.a), w(old.x, now.x)
	for i := range now.m {
		now.m[i] = w(old.m[i], now.m[i])
	}
	return now
}

// widenAfter is how many times a block's entry state may grow before the
// analysis gives up on precision there (only loops revisit a block).
const widenAfter = 8

// need runs a value-range analysis over A, X and M[] and returns the end
// of the furthest packet byte any load can read when it is in bounds,
// capped at the window.
func (f *flow) need() uint32 {
	in := map[*block]state{f.blocks[0]: {}} // A, X and M[] start at 0
	visits := map[*block]int{}              // entry-state changes after the block ran
	done := map[*block]bool{}
	work := []*block{f.blocks[0]}
	queued := map[*block]bool{f.blocks[0]: true}
	var end uint64
	for len(work) > 0 {
		// Lowest pc first: every predecessor of a block in a loop-free
		// program is done before the block.
		bi := 0
		for i, b := range work {
			if b.start < work[bi].start {
				bi = i
			}
		}
		b := work[bi]
		work = append(work[:bi], work[bi+1:]...)
		queued[b] = false
		done[b] = true
		st := in[b]
		for _, insn := range f.prog[b.start:b.end] {
			end = max(end, step(&st, insn, f.window))
		}
		for _, s := range b.succs {
			sb := f.byStart[s]
			old, seen := in[sb]
			now := st
			if seen {
				now = old.union(st)
				if now == old {
					continue
				}
				if done[sb] { // a loop brought us back
					if visits[sb]++; visits[sb] > widenAfter {
						now = widen(old, now)
					}
				}
			}
			in[sb] = now
			if !queued[sb] {
				queued[sb] = true
				work = append(work, sb)
			}
		}
	}
	return uint32(min(end, uint64(f.window)))
}

// step applies one instruction to st and returns the end of the packet
// bytes it reads when in bounds (0 if it reads none or never can).
func step(st *state, in bpf.RawInstruction, window uint32) uint64 {
	loaded := func(op uint16) span {
		switch op & 0x18 {
		case sizeB:
			return span{0, 0xff}
		case sizeH:
			return span{0, 0xffff}
		}
		return full
	}
	n := uint64(loadBytes(in.Op))
	switch in.Op & 0x07 {
	case classLD, classLDX:
		dst := &st.a
		if in.Op&0x07 == classLDX {
			dst = &st.x
		}
		switch in.Op & 0xe0 {
		case modeIMM:
			*dst = exact(in.K)
		case modeLEN:
			*dst = full
		case modeMEM:
			*dst = st.m[in.K]
		case modeABS:
			*dst = loaded(in.Op)
			if end := uint64(in.K) + n; end <= uint64(window) {
				return end
			}
		case modeIND:
			*dst = loaded(in.Op)
			if uint64(in.K)+st.x.lo+n <= uint64(window) {
				return uint64(in.K) + st.x.hi + n
			}
		case modeMSH:
			st.x = span{0, 60}
			if end := uint64(in.K) + 1; end <= uint64(window) {
				return end
			}
		}
	case classST:
		st.m[in.K] = st.a
	case classSTX:
		st.m[in.K] = st.x
	case classMISC:
		if in.Op == classMISC|miscTAX {
			st.x = st.a
		} else {
			st.a = st.x
		}
	case classALU:
		o := exact(in.K)
		if in.Op&srcX != 0 {
			o = st.x
		}
		st.a = alu(in.Op&0xf0, st.a, o)
	}
	return 0
}

// alu is the range of A op o for A in a and o in o (32-bit arithmetic;
// shifts by X of 32 or more give 0, division by X == 0 rejects).
func alu(op uint16, a, o span) span {
	switch op {
	case aluADD:
		return capped(a.lo+o.lo, a.hi+o.hi)
	case aluSUB:
		if a.lo >= o.hi {
			return span{a.lo - o.hi, a.hi - o.lo}
		}
	case aluMUL:
		if a.hi == 0 || o.hi <= u32max/a.hi {
			return span{a.lo * o.lo, a.hi * o.hi}
		}
	case aluDIV:
		return span{a.lo / max(o.hi, 1), a.hi / max(o.lo, 1)}
	case aluMOD:
		return span{0, min(a.hi, max(o.hi, 1)-1)}
	case aluAND:
		return span{0, min(a.hi, o.hi)}
	case aluOR, aluXOR:
		return span{0, uint64(1)<<bitLen(max(a.hi, o.hi)) - 1}
	case aluLSH:
		if o.hi < 32 {
			return capped(a.lo<<o.lo, a.hi<<o.hi)
		}
	case aluRSH:
		if o.hi < 32 {
			return span{a.lo >> o.hi, a.hi >> o.lo}
		}
		return span{0, a.hi}
	}
	return full // NEG, and anything that may wrap
}

func bitLen(v uint64) uint {
	n := uint(0)
	for ; v > 0; v >>= 1 {
		n++
	}
	return n
}
