package filter

import (
	"math"

	"golang.org/x/net/bpf"
)

// block is a basic block of a classic program: [start, end).
type block struct {
	start, end int
	succs      []int
}

// maxAbs is the largest end of the block's constant-offset packet loads
// that fit in window (loads beyond it reject unconditionally).
func (b block) maxAbs(prog []bpf.RawInstruction, window uint32) uint32 {
	var need uint32
	for _, in := range prog[b.start:b.end] {
		if in.Op&0x07 > classLDX {
			continue
		}
		mode := in.Op & 0xe0
		if mode != modeABS && mode != modeMSH {
			continue
		}
		_, n := loadSize(in.Op)
		if mode == modeMSH {
			n = 1
		}
		if end := uint64(in.K) + uint64(n); end <= uint64(window) {
			need = max(need, uint32(end))
		}
	}
	return need
}

// flow is the control flow of a classic program.
type flow struct {
	blocks    []block
	reachable map[int]bool // by block start
	seen      map[int]bool // scratch for Translate
}

func successors(in bpf.RawInstruction, pc int) []int {
	switch in.Op & 0x07 {
	case classRET:
		return nil
	case classJMP:
		if in.Op&0xf0 == jmpJA {
			return []int{pc + 1 + int(in.K)}
		}
		if in.Jt == in.Jf {
			return []int{pc + 1 + int(in.Jt)}
		}
		return []int{pc + 1 + int(in.Jt), pc + 1 + int(in.Jf)}
	}
	return []int{pc + 1}
}

// analyze splits a validated program into basic blocks in pc order (which
// is a topological order: classic jumps go forward only).
// A load that can never be in bounds (its constant part alone ends beyond
// window) rejects unconditionally, so its block ends there.
func analyze(prog []bpf.RawInstruction, window uint32) *flow {
	leader := make([]bool, len(prog)+1)
	leader[0] = true
	for pc, in := range prog {
		if c := in.Op & 0x07; c == classJMP || c == classRET {
			leader[pc+1] = true
			for _, s := range successors(in, pc) {
				leader[s] = true
			}
		}
	}
	f := &flow{reachable: map[int]bool{0: true}, seen: map[int]bool{}}
	for pc := 0; pc < len(prog); {
		end := pc + 1
		for end < len(prog) && !leader[end] {
			end++
		}
		b := block{start: pc, end: end, succs: successors(prog[end-1], end-1)}
		for i := pc; i < end; i++ {
			if alwaysOOB(prog[i], window) {
				b.end, b.succs = i+1, nil
				break
			}
		}
		f.blocks = append(f.blocks, b)
		if f.reachable[pc] {
			for _, s := range b.succs {
				f.reachable[s] = true
			}
		}
		pc = end
	}
	return f
}

// alwaysOOB reports a packet load that no frame of at most window bytes
// can satisfy.
func alwaysOOB(in bpf.RawInstruction, window uint32) bool {
	if in.Op&0x07 > classLDX {
		return false
	}
	mode := in.Op & 0xe0
	if mode != modeABS && mode != modeIND && mode != modeMSH {
		return false
	}
	_, n := loadSize(in.Op)
	if mode == modeMSH {
		n = 1
	}
	return uint64(in.K)+uint64(n) > uint64(window)
}

// span is an interval of uint32 values held in uint64s.
type span struct{ lo, hi uint64 }

const u32max = math.MaxUint32

var full = span{0, u32max}

func exact(v uint32) span { return span{uint64(v), uint64(v)} }

func (s span) union(o span) span { return span{min(s.lo, o.lo), max(s.hi, o.hi)} }

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

// need runs a value-range analysis over the program and returns the
// largest byte offset any packet load can reach, capped at window.
func (f *flow) need(prog []bpf.RawInstruction, window uint32) uint32 {
	in := map[int]state{0: {}}
	var need uint64
	for _, b := range f.blocks {
		if !f.reachable[b.start] {
			continue
		}
		st, ok := in[b.start]
		if !ok {
			continue
		}
		for pc := b.start; pc < b.end; pc++ {
			need = max(need, step(&st, prog[pc]))
		}
		for _, s := range b.succs {
			if old, ok := in[s]; ok {
				in[s] = old.union(st)
			} else {
				in[s] = st
			}
		}
	}
	return uint32(min(need, uint64(window)))
}

// step applies one instruction to st and returns the end of the packet
// bytes it reads (0 if none).
func step(st *state, in bpf.RawInstruction) uint64 {
	loaded := func(op uint16) span {
		switch op & 0x18 {
		case sizeB:
			return span{0, 0xff}
		case sizeH:
			return span{0, 0xffff}
		}
		return full
	}
	_, n := loadSize(in.Op)
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
			return uint64(in.K) + uint64(n)
		case modeIND:
			end := st.x.hi + uint64(in.K) + uint64(n)
			*dst = loaded(in.Op)
			return end
		case modeMSH:
			st.x = span{0, 60}
			return uint64(in.K) + 1
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

func alu(op uint16, a, o span) span {
	switch op {
	case aluADD:
		return capped(a.lo+o.lo, a.hi+o.hi)
	case aluSUB:
		if a.lo >= o.hi {
			return span{a.lo - o.hi, a.hi - o.lo}
		}
	case aluMUL:
		if a.hi == 0 || o.hi <= u32max/max(a.hi, 1) {
			return span{a.lo * o.lo, a.hi * o.hi}
		}
	case aluDIV:
		return span{a.lo / max(o.hi, 1), a.hi / max(o.lo, 1)}
	case aluMOD:
		if o.hi > 0 {
			return span{0, min(a.hi, o.hi-1)}
		}
		return span{0, 0}
	case aluAND:
		return span{0, min(a.hi, o.hi)}
	case aluOR, aluXOR:
		return capped(0, uint64(1)<<bitsFor(max(a.hi, o.hi))-1)
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
	return full
}

func bitsFor(v uint64) uint {
	n := uint(0)
	for v > 0 {
		n++
		v >>= 1
	}
	return n
}
