package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Validate applies the Linux kernel's rules for classic BPF
// (bpf_check_classic in net/core/filter.c): 1 to 4096 instructions, only
// the opcodes the kernel knows, no constant division by zero, constant
// shifts below 32, scratch memory indexes below 16, jumps forward and
// inside the program, absolute loads at SKF_AD_OFF and above only for
// known ancillary data, a return as the last instruction (so every path
// ends in a return), and no read of a scratch word that some path has not
// stored (check_load_and_stores).
//
// Translate accepts one thing more: libpcap's backward "ja" (see
// Translate).
func Validate(prog []bpf.RawInstruction) error {
	return check(prog, false)
}

// check is Validate; loops allows backward "ja" within the program, as
// libpcap's userland filter and its validator (pcap_validate_filter) do.
func check(prog []bpf.RawInstruction, loops bool) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return fmt.Errorf("%d instructions: a classic program has 1 to %d", len(prog), maxInsns)
	}
	for pc, in := range prog {
		bad := func(format string, args ...any) error {
			return &InsnError{PC: pc, Insn: in, Reason: fmt.Sprintf(format, args...)}
		}
		if in.Op >= uint16(len(allowed)) || !allowed[in.Op] {
			return bad("unknown opcode")
		}
		switch in.Op {
		case classALU | aluDIV | srcK, classALU | aluMOD | srcK:
			if in.K == 0 {
				return bad("division by zero")
			}
		case classALU | aluLSH | srcK, classALU | aluRSH | srcK:
			if in.K >= 32 {
				return bad("shift by %d: 31 at most", in.K)
			}
		case classLD | modeMEM, classLDX | modeMEM, classST, classSTX:
			if in.K >= memWords {
				return bad("scratch memory index %d out of range 0-15", in.K)
			}
		case classJMP | jmpJA:
			if loops && isBackward(in) {
				if pc+1+int(int32(in.K)) < 0 {
					return bad("jump before the first instruction")
				}
			} else if in.K >= uint32(len(prog)-pc-1) {
				if isBackward(in) {
					return bad("backward jump (a loop; only libpcap's own filter runs those)")
				}
				return bad("jump past the last instruction")
			}
		case classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS:
			if _, ok := ancillary[in.K-skfAdOff]; in.K >= skfAdOff && !ok {
				return bad("unknown ancillary load SKF_AD_OFF%+d", int32(in.K-skfAdOff))
			}
		default:
			if in.Op&0x07 == classJMP && (pc+1+int(in.Jt) >= len(prog) || pc+1+int(in.Jf) >= len(prog)) {
				return bad("jump past the last instruction")
			}
		}
	}
	if last := prog[len(prog)-1]; last.Op&0x07 != classRET {
		return &InsnError{PC: len(prog) - 1, Insn: last, Reason: "the last instruction is not a return"}
	}
	return checkMemory(prog)
}

// checkMemory is the kernel's check_load_and_stores: a forward pass that
// tracks which scratch words are stored on every path to each
// instruction. A backward jump adds nothing to its target's mask (the
// kernel has none; Translate zeroes every scratch word it reads anyway).
func checkMemory(prog []bpf.RawInstruction) error {
	masks := make([]uint16, len(prog))
	for i := range masks {
		masks[i] = 0xffff
	}
	var valid uint16
	for pc, in := range prog {
		valid &= masks[pc]
		switch in.Op {
		case classST, classSTX:
			valid |= 1 << in.K
		case classLD | modeMEM, classLDX | modeMEM:
			if valid&(1<<in.K) == 0 {
				return &InsnError{PC: pc, Insn: in, Reason: fmt.Sprintf("reads M[%d], which is not stored on every path before it", in.K)}
			}
		default:
			if in.Op&0x07 == classJMP {
				for _, s := range successors(in, pc) {
					if s > pc {
						masks[s] &= valid
					}
				}
				valid = 0xffff
			}
		}
	}
	return nil
}
