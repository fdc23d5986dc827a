package filter

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// DefaultWindow is the capture program's largest frame copy (RT_WINDOW).
const DefaultWindow = 65540

// Options tune the translation.
type Options struct {
	// MergeChecks emits one packet bounds check per basic block, covering
	// its constant-offset loads, and none where every path into the block
	// has checked enough already. false: one check per load.
	MergeChecks bool
	// Window is the most bytes the function may be given (the bound the
	// verifier sees); 0 means DefaultWindow.
	Window uint32
}

// DefaultOptions are what ringtap ships.
var DefaultOptions = Options{MergeChecks: true, Window: DefaultWindow}

// Program is a translated filter.
type Program struct {
	Classic []bpf.RawInstruction
	// Insns is the function body, calling convention as in bpf/capture.c.
	Insns asm.Instructions
	// Need is how many leading bytes of a frame the filter can read
	// (Window when a computed offset is unbounded).
	Need uint32
	// Checks is the number of packet bounds checks emitted.
	Checks int
	Opts   Options
}

// Register use in the translated function.
const (
	regA    = asm.R0
	regX    = asm.R9
	regPkt  = asm.R6
	regHave = asm.R7
	regLen  = asm.R8
	regT1   = asm.R1
	regT2   = asm.R2
)

// memOff is the stack offset of scratch word M[k].
func memOff(k uint32) int16 { return int16(-4 * (memWords - int(k))) }

// emitter collects eBPF instructions with jumps to classic pcs or to the
// shared reject exit, resolved at the end.
type emitter struct {
	out     asm.Instructions
	targets []int // per out insn: -1 none, -2 reject, else classic pc
	rejects bool
}

const (
	noTarget     = -1
	rejectTarget = -2
)

func (e *emitter) add(ins asm.Instruction) { e.addJ(ins, noTarget) }

func (e *emitter) addJ(ins asm.Instruction, target int) {
	e.out = append(e.out, ins)
	e.targets = append(e.targets, target)
	if target == rejectTarget {
		e.rejects = true
	}
}

// Translate turns a classic program into an eBPF function body.
func Translate(prog []bpf.RawInstruction, opts Options) (*Program, error) {
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if err := Validate(prog); err != nil {
		return nil, err
	}
	if usesAncillary(prog) {
		return nil, ErrLiveOnly
	}
	cfg := analyze(prog, opts.Window)
	p := &Program{Classic: prog, Opts: opts, Need: cfg.need(prog, opts.Window)}

	e := &emitter{}
	e.add(asm.Mov.Reg(regPkt, asm.R1))
	e.add(asm.Mov.Reg32(regHave, asm.R2))
	e.add(asm.Mov.Reg32(regLen, asm.R3))
	e.add(asm.Mov.Imm32(regA, 0))
	e.add(asm.Mov.Imm32(regX, 0))
	zeroed := map[uint32]bool{}
	for _, in := range prog {
		if (in.Op == classLD|modeMEM || in.Op == classLDX|modeMEM) && !zeroed[in.K] {
			zeroed[in.K] = true
			e.add(asm.StoreImm(asm.R10, memOff(in.K), 0, asm.Word))
		}
	}

	start := make([]int, len(prog)) // eBPF index of each classic pc, -1 if unreachable
	for i := range start {
		start[i] = -1
	}
	checked := make([]uint32, len(prog)) // guaranteed bytes at block entry
	for _, b := range cfg.blocks {
		if !cfg.reachable[b.start] {
			continue
		}
		start[b.start] = len(e.out) // jumps land on the block's check
		guaranteed := uint32(0)
		if opts.MergeChecks {
			guaranteed = checked[b.start]
			if need := b.maxAbs(prog, opts.Window); need > guaranteed {
				e.addJ(asm.JLT.Imm(regHave, int32(need), ""), rejectTarget)
				p.Checks++
				guaranteed = need
			}
		}
		for pc := b.start; pc < b.end; pc++ {
			if pc != b.start {
				start[pc] = len(e.out)
			}
			if err := p.insn(e, prog, pc, opts); err != nil {
				return nil, err
			}
		}
		if opts.MergeChecks {
			for _, s := range b.succs {
				if cfg.seen[s] {
					checked[s] = min(checked[s], guaranteed)
				} else {
					cfg.seen[s] = true
					checked[s] = guaranteed
				}
			}
		}
	}
	rejectAt := len(e.out)
	if e.rejects {
		e.add(asm.Mov.Imm32(asm.R0, 0))
		e.add(asm.Return())
	}
	for i, t := range e.targets {
		var to int
		switch {
		case t == noTarget:
			continue
		case t == rejectTarget:
			to = rejectAt
		default:
			to = start[t]
		}
		off := to - i - 1
		if off < 0 || off > 0x7fff {
			return nil, fmt.Errorf("%w: jump of %d instructions does not fit eBPF's 16-bit offset", ErrUnsupported, off)
		}
		e.out[i].Offset = int16(off)
	}
	p.Insns = e.out
	return p, nil
}

func loadSize(op uint16) (asm.Size, uint32) {
	switch op & 0x18 {
	case sizeH:
		return asm.Half, 2
	case sizeB:
		return asm.Byte, 1
	}
	return asm.Word, 4
}

// loadAbs emits dst = P[k:k+size] for a constant k whose bounds were
// checked (or are checked here when check is set).
func loadAbs(e *emitter, p *Program, dst asm.Register, k uint32, op uint16, check bool, window uint32) {
	sz, n := loadSize(op)
	end := uint64(k) + uint64(n)
	if end > uint64(window) {
		e.addJ(asm.Ja.Label(""), rejectTarget) // never within any frame we get
		return
	}
	if check {
		e.addJ(asm.JLT.Imm(regHave, int32(end), ""), rejectTarget)
		p.Checks++
	}
	if k <= 0x7fff {
		e.add(asm.LoadMem(dst, regPkt, int16(k), sz))
	} else {
		e.add(asm.Mov.Reg(regT1, regPkt))
		e.add(asm.Add.Imm(regT1, int32(k)))
		e.add(asm.LoadMem(dst, regT1, 0, sz))
	}
	if sz != asm.Byte {
		e.add(asm.HostTo(asm.BE, dst, sz))
	}
}

func (p *Program) insn(e *emitter, prog []bpf.RawInstruction, pc int, opts Options) error {
	in := prog[pc]
	perLoad := !opts.MergeChecks
	switch in.Op & 0x07 {
	case classLD, classLDX:
		dst := regA
		if in.Op&0x07 == classLDX {
			dst = regX
		}
		switch in.Op & 0xe0 {
		case modeIMM:
			e.add(asm.Mov.Imm32(dst, int32(in.K)))
		case modeLEN:
			e.add(asm.Mov.Reg32(dst, regLen))
		case modeMEM:
			e.add(asm.LoadMem(dst, asm.R10, memOff(in.K), asm.Word))
		case modeABS:
			loadAbs(e, p, dst, in.K, in.Op, perLoad, opts.Window)
		case modeMSH:
			loadAbs(e, p, regX, in.K, classLD|sizeB|modeABS, perLoad, opts.Window)
			e.add(asm.And.Imm32(regX, 0xf))
			e.add(asm.LSh.Imm32(regX, 2))
		case modeIND:
			_, n := loadSize(in.Op)
			if uint64(in.K)+uint64(n) > uint64(opts.Window) {
				e.addJ(asm.Ja.Label(""), rejectTarget)
				return nil
			}
			sz, _ := loadSize(in.Op)
			e.add(asm.Mov.Reg(regT1, regX))                                    // X is zero-extended
			e.add(asm.Mov.Imm32(regT2, int32(in.K)))                           // zero-extends k
			e.add(asm.Add.Reg(regT1, regT2))                                   // 64-bit: no wrap
			e.addJ(asm.JGT.Imm(regT1, int32(opts.Window-n), ""), rejectTarget) // bound for the verifier
			e.add(asm.Mov.Reg(regT2, regT1))
			e.add(asm.Add.Imm(regT2, int32(n)))
			e.addJ(asm.JGT.Reg(regT2, regHave, ""), rejectTarget)
			e.add(asm.Add.Reg(regT1, regPkt))
			e.add(asm.LoadMem(regA, regT1, 0, sz))
			if sz != asm.Byte {
				e.add(asm.HostTo(asm.BE, regA, sz))
			}
			p.Checks++
		default:
			return fmt.Errorf("%w: %s", ErrUnsupported, describe(in))
		}
	case classST:
		e.add(asm.StoreMem(asm.R10, memOff(in.K), regA, asm.Word))
	case classSTX:
		e.add(asm.StoreMem(asm.R10, memOff(in.K), regX, asm.Word))
	case classALU:
		return aluInsn(e, in)
	case classJMP:
		return jumpInsn(e, in, pc)
	case classRET:
		if in.Op == classRET|retK {
			e.add(asm.Mov.Imm32(asm.R0, int32(in.K)))
		}
		e.add(asm.Return())
	case classMISC:
		if in.Op == classMISC|miscTAX {
			e.add(asm.Mov.Reg32(regX, regA))
		} else {
			e.add(asm.Mov.Reg32(regA, regX))
		}
	default:
		return fmt.Errorf("%w: %s", ErrUnsupported, describe(in))
	}
	return nil
}

var aluOps = map[uint16]asm.ALUOp{
	aluADD: asm.Add, aluSUB: asm.Sub, aluMUL: asm.Mul, aluDIV: asm.Div, aluOR: asm.Or,
	aluAND: asm.And, aluLSH: asm.LSh, aluRSH: asm.RSh, aluMOD: asm.Mod, aluXOR: asm.Xor,
}

func aluInsn(e *emitter, in bpf.RawInstruction) error {
	op := in.Op & 0xf0
	if op == aluNEG {
		e.add(asm.Neg.Imm32(regA, 0))
		return nil
	}
	a, ok := aluOps[op]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnsupported, describe(in))
	}
	if in.Op&srcX == 0 {
		// Validate refused division by zero and shifts of 32 or more.
		e.add(a.Imm32(regA, int32(in.K)))
		return nil
	}
	switch op {
	case aluDIV, aluMOD:
		// Division by zero rejects the packet, as in the kernel and libpcap.
		e.addJ(asm.JEq.Imm32(regX, 0, ""), rejectTarget)
		e.add(a.Reg32(regA, regX))
	case aluLSH, aluRSH:
		// libpcap: a shift by 32 or more gives 0.
		j := asm.JLT.Imm32(regX, 32, "")
		j.Offset = 2
		e.add(j)
		e.add(asm.Mov.Imm32(regA, 0))
		skip := asm.Ja.Label("")
		skip.Offset = 1
		e.add(skip)
		e.add(a.Reg32(regA, regX))
	default:
		e.add(a.Reg32(regA, regX))
	}
	return nil
}

// jump ops and their negations for the false branch.
var jumpOps = map[uint16][2]asm.JumpOp{
	jmpJEQ: {asm.JEq, asm.JNE},
	jmpJGT: {asm.JGT, asm.JLE},
	jmpJGE: {asm.JGE, asm.JLT},
}

func jumpInsn(e *emitter, in bpf.RawInstruction, pc int) error {
	op := in.Op & 0xf0
	if op == jmpJA {
		e.addJ(asm.Ja.Label(""), pc+1+int(in.K))
		return nil
	}
	tTrue, tFalse := pc+1+int(in.Jt), pc+1+int(in.Jf)
	cond := func(j asm.JumpOp) asm.Instruction {
		if in.Op&srcX != 0 {
			return j.Reg32(regA, regX, "")
		}
		return j.Imm32(regA, int32(in.K), "")
	}
	if op == jmpJSET {
		if in.Jt == 0 && in.Jf != 0 {
			// Jump to false when A & k == 0.
			e.add(asm.Mov.Reg32(regT1, regA))
			if in.Op&srcX != 0 {
				e.add(asm.And.Reg32(regT1, regX))
			} else {
				e.add(asm.And.Imm32(regT1, int32(in.K)))
			}
			e.addJ(asm.JEq.Imm32(regT1, 0, ""), tFalse)
			return nil
		}
		e.addJ(cond(asm.JSet), tTrue)
		if in.Jf != 0 {
			e.addJ(asm.Ja.Label(""), tFalse)
		}
		return nil
	}
	ops, ok := jumpOps[op]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnsupported, describe(in))
	}
	switch {
	case in.Jt == in.Jf:
		if in.Jt != 0 {
			e.addJ(asm.Ja.Label(""), tTrue)
		}
	case in.Jt == 0:
		e.addJ(cond(ops[1]), tFalse)
	default:
		e.addJ(cond(ops[0]), tTrue)
		if in.Jf != 0 {
			e.addJ(asm.Ja.Label(""), tFalse)
		}
	}
	return nil
}
