package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Classic BPF encoding (linux/filter.h).
const (
	classLD   = 0x00
	classLDX  = 0x01
	classST   = 0x02
	classSTX  = 0x03
	classALU  = 0x04
	classJMP  = 0x05
	classRET  = 0x06
	classMISC = 0x07

	maxInsns = 4096
	memWords = 16

	sizeW = 0x00
	sizeH = 0x08
	sizeB = 0x10

	modeIMM = 0x00
	modeABS = 0x20
	modeIND = 0x40
	modeMEM = 0x60
	modeLEN = 0x80
	modeMSH = 0xa0

	srcK = 0x00
	srcX = 0x08

	aluADD = 0x00
	aluSUB = 0x10
	aluMUL = 0x20
	aluDIV = 0x30
	aluOR  = 0x40
	aluAND = 0x50
	aluLSH = 0x60
	aluRSH = 0x70
	aluNEG = 0x80
	aluMOD = 0x90
	aluXOR = 0xa0

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJGE  = 0x30
	jmpJSET = 0x40

	retK = 0x00
	retA = 0x10

	miscTAX = 0x00
	miscTXA = 0x80
)

// Validate applies the kernel's classic BPF rules (bpf_check_classic): 1 to
// 4096 instructions, known opcodes, jumps forward and inside the program,
// scratch memory indexes below 16, no constant division by zero or shift
// by 32 or more, and a return as the last instruction.
func Validate(prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return fmt.Errorf("%d instructions: a classic program has 1 to %d", len(prog), maxInsns)
	}
	for pc, in := range prog {
		bad := func(why string) error {
			return fmt.Errorf("instruction %d (%s): %s", pc, describe(in), why)
		}
		switch in.Op & 0x07 {
		case classLD, classLDX:
			mode, size := in.Op&0xe0, in.Op&0x18
			ok := false
			if in.Op&0x07 == classLD {
				ok = (mode == modeABS || mode == modeIND) && size != 0x18 ||
					in.Op == classLD|modeIMM || in.Op == classLD|modeMEM || in.Op == classLD|sizeW|modeLEN
			} else {
				ok = in.Op == classLDX|modeIMM || in.Op == classLDX|modeMEM ||
					in.Op == classLDX|sizeW|modeLEN || in.Op == classLDX|sizeB|modeMSH
			}
			if !ok {
				return bad("unknown load")
			}
			if mode == modeMEM && in.K >= memWords {
				return bad("scratch memory index out of range 0-15")
			}
		case classST, classSTX:
			if in.Op&^0x07 != 0 {
				return bad("unknown store")
			}
			if in.K >= memWords {
				return bad("scratch memory index out of range 0-15")
			}
		case classALU:
			op := in.Op & 0xf0
			if in.Op&0x07 != classALU || op > aluXOR || (op == aluNEG && in.Op&srcX != 0) {
				return bad("unknown ALU operation")
			}
			if in.Op&srcX == 0 {
				switch {
				case (op == aluDIV || op == aluMOD) && in.K == 0:
					return bad("division by zero")
				case (op == aluLSH || op == aluRSH) && in.K >= 32:
					return bad("shift by 32 or more")
				}
			}
		case classJMP:
			op := in.Op & 0xf0
			if op > jmpJSET {
				return bad("unknown jump")
			}
			if op == jmpJA {
				if in.Op&srcX != 0 {
					return bad("unknown jump")
				}
				if in.K >= 1<<31 {
					return bad("backward jump: a loop (libpcap emits one for protochain), which classic BPF in the kernel and ringtap cannot run")
				}
				if uint64(pc)+1+uint64(in.K) >= uint64(len(prog)) {
					return bad("jump out of the program")
				}
				continue
			}
			if pc+1+int(in.Jt) >= len(prog) || pc+1+int(in.Jf) >= len(prog) {
				return bad("jump out of the program")
			}
		case classRET:
			if in.Op != classRET|retK && in.Op != classRET|retA {
				return bad("unknown return")
			}
		case classMISC:
			if in.Op != classMISC|miscTAX && in.Op != classMISC|miscTXA {
				return bad("unknown miscellaneous operation")
			}
		}
	}
	if last := prog[len(prog)-1]; last.Op&0x07 != classRET {
		return fmt.Errorf("last instruction (%s) is not a return", describe(last))
	}
	return nil
}

// describe renders one instruction as x/net/bpf disassembles it, or its
// raw fields when it cannot.
func describe(in bpf.RawInstruction) string {
	if s, ok := in.Disassemble().(fmt.Stringer); ok {
		if _, raw := in.Disassemble().(bpf.RawInstruction); !raw {
			return s.String()
		}
	}
	return fmt.Sprintf("code %#04x jt %d jf %d k %d", in.Op, in.Jt, in.Jf, in.K)
}
