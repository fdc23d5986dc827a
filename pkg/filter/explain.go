package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// Explain renders the classic program the way `tcpdump -d` does, then the
// eBPF function that replaces the capture program's filter stub.
func Explain(p *Program) string {
	var b strings.Builder
	fmt.Fprintf(&b, "classic BPF (%d instructions):\n", len(p.Classic))
	for pc, in := range p.Classic {
		fmt.Fprintf(&b, "(%03d) %s\n", pc, classicText(in, pc))
	}
	mode := "merged per basic block"
	if !p.Opts.MergeChecks {
		mode = "one per load"
	}
	fmt.Fprintf(&b, "\neBPF (%d instructions, %d bounds checks %s, reads up to %d bytes of a frame):\n", len(p.Insns), p.Checks, mode, p.Need)
	for i, ins := range p.Insns {
		fmt.Fprintf(&b, "%4d: %v\n", i, ins)
	}
	return b.String()
}

func classicText(in bpf.RawInstruction, pc int) string {
	op := func(name, arg string) string { return fmt.Sprintf("%-8s %s", name, arg) }
	sizeName := map[uint16]string{sizeW: "", sizeH: "h", sizeB: "b"}[in.Op&0x18]
	switch in.Op & 0x07 {
	case classLD, classLDX:
		name := "ld"
		if in.Op&0x07 == classLDX {
			name = "ldx"
		}
		switch in.Op & 0xe0 {
		case modeIMM:
			return op(name, fmt.Sprintf("#%#x", in.K))
		case modeLEN:
			return op(name, "#pktlen")
		case modeMEM:
			return op(name, fmt.Sprintf("M[%d]", in.K))
		case modeABS:
			return op(name+sizeName, fmt.Sprintf("[%d]", in.K))
		case modeIND:
			return op(name+sizeName, fmt.Sprintf("[x + %d]", in.K))
		case modeMSH:
			return op("ldxb", fmt.Sprintf("4*([%d]&0xf)", in.K))
		}
	case classST:
		return op("st", fmt.Sprintf("M[%d]", in.K))
	case classSTX:
		return op("stx", fmt.Sprintf("M[%d]", in.K))
	case classALU:
		names := map[uint16]string{aluADD: "add", aluSUB: "sub", aluMUL: "mul", aluDIV: "div", aluOR: "or", aluAND: "and",
			aluLSH: "lsh", aluRSH: "rsh", aluNEG: "neg", aluMOD: "mod", aluXOR: "xor"}
		name := names[in.Op&0xf0]
		if in.Op&0xf0 == aluNEG {
			return name
		}
		if in.Op&srcX != 0 {
			return op(name, "x")
		}
		return op(name, fmt.Sprintf("#%d", in.K))
	case classJMP:
		if in.Op&0xf0 == jmpJA {
			return op("ja", fmt.Sprintf("%d", pc+1+int(in.K)))
		}
		name := map[uint16]string{jmpJEQ: "jeq", jmpJGT: "jgt", jmpJGE: "jge", jmpJSET: "jset"}[in.Op&0xf0]
		arg := fmt.Sprintf("#%#x", in.K)
		if in.Op&srcX != 0 {
			arg = "x"
		}
		return fmt.Sprintf("%-8s %-16s jt %d\tjf %d", name, arg, pc+1+int(in.Jt), pc+1+int(in.Jf))
	case classRET:
		if in.Op == classRET|retA {
			return op("ret", "a")
		}
		return op("ret", fmt.Sprintf("#%d", in.K))
	case classMISC:
		if in.Op == classMISC|miscTAX {
			return "tax"
		}
		return "txa"
	}
	return describe(in)
}
