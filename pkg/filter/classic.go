package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// Classic BPF encoding (linux/filter.h, pcap/bpf.h).
const (
	classLD   = 0x00
	classLDX  = 0x01
	classST   = 0x02
	classSTX  = 0x03
	classALU  = 0x04
	classJMP  = 0x05
	classRET  = 0x06
	classMISC = 0x07

	maxInsns = 4096 // BPF_MAXINSNS
	memWords = 16   // BPF_MEMWORDS

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

// Linux socket-filter extensions: absolute loads at these negative offsets
// read ancillary data (SKF_AD_OFF) or the packet relative to its network
// or link-layer header (SKF_NET_OFF, SKF_LL_OFF).
const (
	skfAdOff  = 0xfffff000 // -0x1000
	skfNetOff = 0xfff00000 // -0x100000
	skfLLOff  = 0xffe00000 // -0x200000
)

// ancillary names the SKF_AD_* loads that the kernel knows
// (bpf_anc_helper), by offset from SKF_AD_OFF.
var ancillary = map[uint32]string{
	0: "protocol", 4: "pkttype", 8: "ifindex", 12: "nlattr", 16: "nlattr_nest",
	20: "mark", 24: "queue", 28: "hatype", 32: "rxhash", 36: "cpu",
	40: "alu_xor_x", 44: "vlan_tci", 48: "vlan_avail", 52: "pay_offset",
	56: "random", 60: "vlan_tpid",
}

// allowed is the kernel's table of classic opcodes (chk_code_allowed):
// exact codes, so e.g. "ret x" or a byte-sized immediate load are unknown.
var allowed = func() [0x100]bool {
	var t [0x100]bool
	for _, op := range []uint16{aluADD, aluSUB, aluMUL, aluDIV, aluMOD, aluAND, aluOR, aluXOR, aluLSH, aluRSH} {
		t[classALU|op|srcK], t[classALU|op|srcX] = true, true
	}
	for _, c := range []uint16{
		classALU | aluNEG,
		classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS,
		classLD | sizeW | modeLEN,
		classLD | sizeW | modeIND, classLD | sizeH | modeIND, classLD | sizeB | modeIND,
		classLD | modeIMM, classLD | modeMEM,
		classLDX | sizeW | modeLEN, classLDX | sizeB | modeMSH, classLDX | modeIMM, classLDX | modeMEM,
		classST, classSTX,
		classMISC | miscTAX, classMISC | miscTXA,
		classRET | retK, classRET | retA,
		classJMP | jmpJA,
	} {
		t[c] = true
	}
	for _, op := range []uint16{jmpJEQ, jmpJGT, jmpJGE, jmpJSET} {
		t[classJMP|op|srcK], t[classJMP|op|srcX] = true, true
	}
	return t
}()

func isPacketLoad(op uint16) bool {
	switch op {
	case classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS,
		classLD | sizeW | modeIND, classLD | sizeH | modeIND, classLD | sizeB | modeIND,
		classLDX | sizeB | modeMSH:
		return true
	}
	return false
}

// loadBytes is the width of a packet load.
func loadBytes(op uint16) uint32 {
	switch {
	case op&0x07 == classLDX, op&0x18 == sizeB:
		return 1
	case op&0x18 == sizeH:
		return 2
	}
	return 4
}

// isBackward reports a jump to itself or an earlier instruction (only
// "ja" can: libpcap's protochain loops).
func isBackward(in bpf.RawInstruction) bool {
	return in.Op == classJMP|jmpJA && int32(in.K) < 0
}

// successors are the pcs that can run after pc.
func successors(in bpf.RawInstruction, pc int) []int {
	switch in.Op & 0x07 {
	case classRET:
		return nil
	case classJMP:
		if in.Op&0xf0 == jmpJA {
			return []int{pc + 1 + int(int32(in.K))}
		}
		if in.Jt == in.Jf {
			return []int{pc + 1 + int(in.Jt)}
		}
		return []int{pc + 1 + int(in.Jt), pc + 1 + int(in.Jf)}
	}
	return []int{pc + 1}
}

// describe renders one instruction for error messages: its `tcpdump -d`
// text, spaces squeezed, and its opcode.
func describe(in bpf.RawInstruction, pc int) string {
	return fmt.Sprintf("%s, opcode %#02x", strings.Join(strings.Fields(classicText(in, pc)), " "), in.Op)
}
