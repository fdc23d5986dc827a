package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// Explain renders the classic program as `tcpdump -d` does, then the eBPF
// function that replaces the capture programs' filter stub.
func Explain(p *Program) string {
	var b strings.Builder
	fmt.Fprintf(&b, "classic BPF, %d instructions:\n", len(p.Classic))
	for pc, in := range p.Classic {
		fmt.Fprintf(&b, "(%03d) %s\n", pc, classicText(in, pc))
	}
	mode := "merged per basic block"
	if !p.Opts.MergeChecks {
		mode = "one per load"
	}
	fmt.Fprintf(&b, "\neBPF, %d instructions, %d bounds checks (%s), reads up to %d bytes of a frame:\n",
		len(p.Insns), p.Checks, mode, p.Need)
	for i, ins := range p.Insns {
		fmt.Fprintf(&b, "%4d: %v\n", i, ins)
	}
	return b.String()
}

// classicText is libpcap's bpf_image() without the "(pc) " prefix.
func classicText(in bpf.RawInstruction, pc int) string {
	var op, arg string
	hex := fmt.Sprintf("#%#x", in.K)
	dec := fmt.Sprintf("#%d", int32(in.K))
	size := map[uint16]string{sizeW: "", sizeH: "h", sizeB: "b", 0x18: "?"}[in.Op&0x18]
	switch in.Op {
	case classRET | retK:
		op, arg = "ret", fmt.Sprintf("#%d", int32(in.K))
	case classRET | retA:
		op = "ret"
	case classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS:
		op, arg = "ld"+size, fmt.Sprintf("[%d]", int32(in.K))
		if name, ok := ancillary[in.K-skfAdOff]; ok && in.K >= skfAdOff {
			arg = "[" + name + "]"
		}
	case classLD | sizeW | modeLEN, classLDX | sizeW | modeLEN:
		op, arg = "ld", "#pktlen"
		if in.Op&0x07 == classLDX {
			op = "ldx"
		}
	case classLD | sizeW | modeIND, classLD | sizeH | modeIND, classLD | sizeB | modeIND:
		op, arg = "ld"+size, fmt.Sprintf("[x + %d]", int32(in.K))
	case classLD | modeIMM:
		op, arg = "ld", hex
	case classLDX | modeIMM:
		op, arg = "ldx", hex
	case classLDX | sizeB | modeMSH:
		op, arg = "ldxb", fmt.Sprintf("4*([%d]&0xf)", int32(in.K))
	case classLD | modeMEM:
		op, arg = "ld", fmt.Sprintf("M[%d]", in.K)
	case classLDX | modeMEM:
		op, arg = "ldx", fmt.Sprintf("M[%d]", in.K)
	case classST:
		op, arg = "st", fmt.Sprintf("M[%d]", in.K)
	case classSTX:
		op, arg = "stx", fmt.Sprintf("M[%d]", in.K)
	case classJMP | jmpJA:
		op, arg = "ja", fmt.Sprintf("%d", pc+1+int(int32(in.K)))
	case classALU | aluNEG:
		op = "neg"
	case classMISC | miscTAX:
		op = "tax"
	case classMISC | miscTXA:
		op = "txa"
	default:
		switch in.Op & 0x07 {
		case classJMP:
			op = map[uint16]string{jmpJEQ: "jeq", jmpJGT: "jgt", jmpJGE: "jge", jmpJSET: "jset"}[in.Op&0xf0]
		case classALU:
			op = map[uint16]string{aluADD: "add", aluSUB: "sub", aluMUL: "mul", aluDIV: "div", aluMOD: "mod",
				aluAND: "and", aluOR: "or", aluXOR: "xor", aluLSH: "lsh", aluRSH: "rsh"}[in.Op&0xf0]
		}
		switch {
		case op == "":
			op, arg = "unimp", fmt.Sprintf("0x%x", in.Op)
		case in.Op&srcX != 0:
			arg = "x"
		case in.Op&0x07 == classJMP || op == "and" || op == "or" || op == "xor":
			arg = hex
		default:
			arg = dec
		}
	}
	if in.Op&0x07 == classJMP && in.Op&0xf0 != jmpJA && op != "unimp" {
		return fmt.Sprintf("%-8s %-16s jt %d\tjf %d", op, arg, pc+1+int(in.Jt), pc+1+int(in.Jf))
	}
	return fmt.Sprintf("%-8s %s", op, arg)
}
