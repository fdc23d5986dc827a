package filter

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// DefaultWindow is the capture programs' largest copy of a frame
// (RT_WINDOW in bpf/capture.h): a 262144-byte snapshot plus a VLAN tag.
const DefaultWindow = 262148

// LoopLimit bounds libpcap's loops (see Translate): after this many
// backward jumps the translated filter rejects the frame.
const LoopLimit = 64

// Options tune Translate.
type Options struct {
	// MergeChecks emits at most one packet bounds check per basic block,
	// covering its constant-offset loads (and what every path from it is
	// bound to load before accepting), and none where every path into the
	// block has checked enough already. false: one check per load.
	MergeChecks bool
	// Window is the most bytes the function may be given (the length the
	// verifier knows to be addressable at R1); 0 means DefaultWindow.
	Window uint32
}

// DefaultOptions are what ringtap uses.
var DefaultOptions = Options{MergeChecks: true, Window: DefaultWindow}

// Program is a translated filter.
type Program struct {
	// Classic is the program that was translated.
	Classic []bpf.RawInstruction
	// Insns is the eBPF function body, with the calling convention of the
	// capture programs' filter stub (bpf/capture.c): R1 points at the
	// frame's first byte, R2 is the number of bytes there (at most
	// Window), R3 the frame's length on the wire; R0 is 0 to reject.
	Insns asm.Instructions
	// Need is how many leading bytes of a frame the filter can read: the
	// end of the furthest byte any load can reach when in bounds, from a
	// value-range analysis; Window when a computed offset is unbounded, 0
	// when the filter reads no packet byte.
	Need uint32
	// Checks is the number of packet bounds checks emitted.
	Checks int
	// Opts are the options it was translated with (Window filled in).
	Opts Options
}

// Window is the number of leading bytes of a frame that the filter needs
// to see (Need). The capture program copies max(snaplen, Window()).
func (p *Program) Window() uint32 { return p.Need }

// Registers of the translated function. It makes no calls, so R1-R5 stay
// ours; R6 (saved by the JIT if used) only counts loop iterations.
const (
	regA    = asm.R0 // the accumulator, and the return value
	regPkt  = asm.R1 // first byte of the frame (argument)
	regHave = asm.R2 // bytes valid at regPkt (argument)
	regLen  = asm.R3 // wire length (argument)
	regX    = asm.R4 // the index register
	regTmp  = asm.R5
	regLoop = asm.R6 // backward jumps taken
)

// memOff is the stack offset of scratch word M[k]: r10-4, r10-12, ...
// Each word sits in the upper half of its 8-byte stack slot. The verifier
// tracks a register stored at an 8-aligned offset, but a 4-byte store at
// any other offset only marks the bytes as written (STACK_MISC): reading
// M[k] back gives an unknown scalar. That is all the translation needs
// (computed offsets are bounded where used), and it keeps the states the
// verifier compares free of detail, so that paths merge early.
func memOff(k uint32) int16 { return int16(-8*int(k) - 4) }

// Stack words for laundering A and X at a backward jump (same trick).
const (
	launderA = -8*memWords - 4
	launderX = -8*memWords - 12
)

// Jump targets of emitted instructions, resolved once the layout is known.
const (
	noTarget     = -1
	rejectTarget = -2
)

type emitter struct {
	out     asm.Instructions
	targets []int // per instruction: noTarget, rejectTarget or a classic pc
}

func (e *emitter) add(ins ...asm.Instruction) {
	for _, i := range ins {
		e.out = append(e.out, i)
		e.targets = append(e.targets, noTarget)
	}
}

// jump adds a jump to a classic pc or to rejectTarget.
func (e *emitter) jump(ins asm.Instruction, target int) {
	ins = ins.WithReference("")
	e.out = append(e.out, ins)
	e.targets = append(e.targets, target)
}

// skip is a jump over the next n instructions.
func skip(ins asm.Instruction, n int16) asm.Instruction {
	ins = ins.WithReference("")
	ins.Offset = n
	return ins
}

// Translate turns a classic BPF program into the body of an eBPF function
// with the filter stub's calling convention, with libpcap's semantics:
//
//   - A and X are 32-bit (ALU32, JMP32); A, X and M[] start at 0.
//   - A packet load that does not fit in the bytes given (R2) returns 0;
//     offsets are computed without wrapping (X + k in 64 bits). With
//     MergeChecks, constant-offset loads share checks at the top of basic
//     blocks (see the package documentation), so a frame
//     that classic BPF would reject may be rejected a few instructions
//     earlier, which nothing can observe.
//   - "len" is the wire length (R3); "ret" returns its value (0 rejects).
//   - Division or modulo by X == 0 returns 0; shifts by X >= 32 give 0,
//     as in libpcap's bpf_filter and x/net/bpf (eBPF would shift by
//     X & 31). Constant shifts of 32 or more are refused by Validate (the
//     kernel and libpcap's compiler refuse them; libpcap's interpreter
//     shifts by k & 31 on x86 while x/net/bpf gives 0).
//
// The program must pass Validate, except that backward "ja" are allowed:
// libpcap's "protochain" walks IPv6/IPv4 header chains with a loop that
// only libpcap's userland filter runs (the kernel refuses it). The
// translation counts backward jumps and rejects the frame after
// LoopLimit of them (libpcap follows any chain, and spins forever on
// some crafted AH headers).
//
// Loads of Linux socket metadata (ancillary data, SKF_AD_OFF) and
// kernel-relative loads (SKF_NET_OFF, SKF_LL_OFF) are refused with
// ErrLiveOnly or ErrUnsupported.
func Translate(prog []bpf.RawInstruction, opts Options) (*Program, error) {
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if opts.Window > 1<<30 {
		return nil, fmt.Errorf("window %d too large", opts.Window)
	}
	if err := check(prog, true); err != nil {
		return nil, err
	}
	for pc, in := range prog {
		if !isPacketLoad(in.Op) || in.K < skfLLOff {
			continue
		}
		if in.Op&0xe0 == modeABS && in.K >= skfAdOff {
			return nil, &InsnError{PC: pc, Insn: in, Err: ErrLiveOnly,
				Reason: fmt.Sprintf("it reads the socket's %s (SKF_AD_OFF%+d)", ancillary[in.K-skfAdOff], int32(in.K-skfAdOff))}
		}
		return nil, &InsnError{PC: pc, Insn: in, Err: ErrUnsupported,
			Reason: "offsets from SKF_LL_OFF (-0x200000) up are Linux socket-filter extensions relative to the link-layer or network header"}
	}

	f := analyze(prog, opts.Window)
	p := &Program{Classic: prog, Opts: opts, Need: f.need()}
	t := &translator{p: p, f: f, e: &emitter{}, start: map[int]int{}}
	if err := t.emit(); err != nil {
		return nil, err
	}
	return p, nil
}

type translator struct {
	p     *Program
	f     *flow
	e     *emitter
	start map[int]int // classic pc of a reachable block -> its first eBPF instruction
}

func (t *translator) emit() error {
	e, prog, opts := t.e, t.p.Classic, t.p.Opts
	e.add(asm.Mov.Imm32(regA, 0), asm.Mov.Imm32(regX, 0))
	var zeroed [memWords]bool
	for _, b := range t.f.blocks {
		for _, in := range prog[b.start:b.end] {
			if b.reachable && (in.Op == classLD|modeMEM || in.Op == classLDX|modeMEM) && !zeroed[in.K] {
				zeroed[in.K] = true
				e.add(asm.StoreImm(asm.R10, memOff(in.K), 0, asm.Word))
			}
		}
	}
	if t.f.loops {
		e.add(asm.Mov.Imm(regLoop, 0))
	}

	var need, entry map[*block]uint32
	if opts.MergeChecks {
		need = t.f.checkAt()
		entry = t.f.guarantees(need)
	}
	reject := -1 // a reachable "ret #0" block serves as the reject exit
	for _, b := range t.f.blocks {
		if !b.reachable {
			continue
		}
		t.start[b.start] = len(e.out)
		if in := prog[b.start]; in.Op == classRET|retK && in.K == 0 && reject < 0 {
			reject = b.start
		}
		if opts.MergeChecks && need[b] > entry[b] {
			t.check(need[b])
		}
		for pc := b.start; pc < b.end; pc++ {
			if err := t.insn(pc); err != nil {
				return err
			}
		}
	}
	rejectAt := len(e.out)
	if reject >= 0 {
		rejectAt = t.start[reject]
	} else {
		for _, tg := range e.targets {
			if tg == rejectTarget {
				e.add(asm.Mov.Imm32(asm.R0, 0), asm.Return())
				break
			}
		}
	}
	for i, tg := range e.targets {
		if tg == noTarget {
			continue
		}
		to := rejectAt
		if tg != rejectTarget {
			to = t.start[tg]
		}
		off := to - i - 1
		if off < -0x8000 || off > 0x7fff {
			return fmt.Errorf("%w: the program is too large: a jump of %d eBPF instructions does not fit in 16 bits", ErrUnsupported, off)
		}
		e.out[i].Offset = int16(off)
	}
	t.p.Insns = e.out
	return nil
}

// check rejects the frame unless at least end bytes are valid.
func (t *translator) check(end uint32) {
	t.e.jump(asm.JLT.Imm32(regHave, int32(end), ""), rejectTarget)
	t.p.Checks++
}

func loadSize(n uint32) asm.Size {
	switch n {
	case 1:
		return asm.Byte
	case 2:
		return asm.Half
	}
	return asm.Word
}

// loadConst emits dst = P[k:k+n] (big-endian) for a constant k that fits
// in the window.
func (t *translator) loadConst(dst asm.Register, k, n uint32) {
	if !t.p.Opts.MergeChecks {
		t.check(k + n)
	}
	sz := loadSize(n)
	if k <= 0x7fff {
		t.e.add(asm.LoadMem(dst, regPkt, int16(k), sz))
	} else {
		t.e.add(asm.Mov.Reg(regTmp, regPkt), asm.Add.Imm(regTmp, int32(k)), asm.LoadMem(dst, regTmp, 0, sz))
	}
	if sz != asm.Byte {
		t.e.add(asm.HostTo(asm.BE, dst, sz))
	}
}

func (t *translator) insn(pc int) error {
	e, in, window := t.e, t.p.Classic[pc], t.p.Opts.Window
	if neverInBounds(in, window) {
		e.jump(asm.Ja.Label(""), rejectTarget)
		return nil
	}
	n := loadBytes(in.Op)
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
			t.loadConst(dst, in.K, n)
		case modeMSH:
			t.loadConst(regX, in.K, 1)
			e.add(asm.And.Imm32(regX, 0xf), asm.LSh.Imm32(regX, 2))
		case modeIND:
			// tmp = X + k in 64 bits: no wrap. The first compare bounds
			// it for the verifier, the second is the semantic check
			// (tmp + n <= have); have <= window makes the first
			// redundant for the result.
			e.add(asm.Mov.Reg32(regTmp, regX))
			if in.K != 0 {
				e.add(asm.Add.Imm(regTmp, int32(in.K)))
			}
			e.jump(asm.JGT.Imm(regTmp, int32(window-n), ""), rejectTarget)
			e.add(asm.Add.Imm(regTmp, int32(n)))
			e.jump(asm.JGT.Reg32(regTmp, regHave, ""), rejectTarget)
			e.add(asm.Add.Reg(regTmp, regPkt), asm.LoadMem(regA, regTmp, -int16(n), loadSize(n)))
			if n > 1 {
				e.add(asm.HostTo(asm.BE, regA, loadSize(n)))
			}
			t.p.Checks++
		}
	case classST:
		e.add(asm.StoreMem(asm.R10, memOff(in.K), regA, asm.Word))
	case classSTX:
		e.add(asm.StoreMem(asm.R10, memOff(in.K), regX, asm.Word))
	case classALU:
		t.alu(in)
	case classJMP:
		t.jump(in, pc)
	case classRET:
		if in.Op == classRET|retK {
			e.add(asm.Mov.Imm32(regA, int32(in.K)))
		}
		e.add(asm.Return())
	case classMISC:
		if in.Op == classMISC|miscTAX {
			e.add(asm.Mov.Reg32(regX, regA))
		} else {
			e.add(asm.Mov.Reg32(regA, regX))
		}
	}
	return nil
}

var aluOps = map[uint16]asm.ALUOp{
	aluADD: asm.Add, aluSUB: asm.Sub, aluMUL: asm.Mul, aluDIV: asm.Div, aluOR: asm.Or,
	aluAND: asm.And, aluLSH: asm.LSh, aluRSH: asm.RSh, aluMOD: asm.Mod, aluXOR: asm.Xor,
}

func (t *translator) alu(in bpf.RawInstruction) {
	e, op := t.e, in.Op&0xf0
	if op == aluNEG {
		e.add(asm.Neg.Imm32(regA, 0))
		return
	}
	a := aluOps[op]
	if in.Op&srcX == 0 {
		// Validate refused division by zero and shifts of 32 or more.
		e.add(a.Imm32(regA, int32(in.K)))
		return
	}
	switch op {
	case aluDIV, aluMOD:
		// Division by zero returns 0 (eBPF would give 0 or A).
		e.jump(asm.JEq.Imm32(regX, 0, ""), rejectTarget)
		e.add(a.Reg32(regA, regX))
	case aluLSH, aluRSH:
		// eBPF shifts by X & 31; classic BPF gives 0 from 32 on.
		e.add(a.Reg32(regA, regX), skip(asm.JLT.Imm32(regX, 32, ""), 1), asm.Mov.Imm32(regA, 0))
	default:
		e.add(a.Reg32(regA, regX))
	}
}

// jumpOps are the conditional jumps and their negations.
var jumpOps = map[uint16][2]asm.JumpOp{
	jmpJEQ:  {asm.JEq, asm.JNE},
	jmpJGT:  {asm.JGT, asm.JLE},
	jmpJGE:  {asm.JGE, asm.JLT},
	jmpJSET: {asm.JSet, asm.InvalidJumpOp}, // negated with a temporary
}

func (t *translator) jump(in bpf.RawInstruction, pc int) {
	e, op := t.e, in.Op&0xf0
	if op == jmpJA {
		target := pc + 1 + int(int32(in.K))
		if target <= pc {
			// A loop (libpcap's protochain), bounded by a counter for
			// the verifier, which explores every iteration. It forgets
			// what it knows about A and X here, so that the states it
			// reaches at the loop's head in one iteration, by whatever
			// path, are equal and pruned (otherwise the ranges of X
			// along each path through LoopLimit iterations make it
			// give up).
			e.add(
				asm.StoreMem(asm.R10, launderA, regA, asm.Word), asm.LoadMem(regA, asm.R10, launderA, asm.Word),
				asm.StoreMem(asm.R10, launderX, regX, asm.Word), asm.LoadMem(regX, asm.R10, launderX, asm.Word),
				asm.Add.Imm(regLoop, 1),
			)
			e.jump(asm.JGT.Imm(regLoop, LoopLimit, ""), rejectTarget)
			e.jump(asm.Ja.Label(""), target)
		} else if in.K != 0 {
			e.jump(asm.Ja.Label(""), target)
		}
		return
	}
	onTrue, onFalse := pc+1+int(in.Jt), pc+1+int(in.Jf)
	cond := func(j asm.JumpOp) asm.Instruction {
		if in.Op&srcX != 0 {
			return j.Reg32(regA, regX, "")
		}
		return j.Imm32(regA, int32(in.K), "")
	}
	ops := jumpOps[op]
	switch {
	case in.Jt == in.Jf:
		if in.Jt != 0 {
			e.jump(asm.Ja.Label(""), onTrue)
		}
	case in.Jt == 0 && op == jmpJSET:
		// Fall through when A & operand != 0: jump when it is 0.
		e.add(asm.Mov.Reg32(regTmp, regA))
		if in.Op&srcX != 0 {
			e.add(asm.And.Reg32(regTmp, regX))
		} else {
			e.add(asm.And.Imm32(regTmp, int32(in.K)))
		}
		e.jump(asm.JEq.Imm32(regTmp, 0, ""), onFalse)
	case in.Jt == 0:
		e.jump(cond(ops[1]), onFalse)
	default:
		e.jump(cond(ops[0]), onTrue)
		if in.Jf != 0 {
			e.jump(asm.Ja.Label(""), onFalse)
		}
	}
}
