package filter

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// compileSnapLen is the snapshot length libpcap assumes when compiling; it
// only shows in `ret #N` (any non-zero return accepts).
const compileSnapLen = 262144

// liveOnly are expression keywords that libpcap implements with Linux
// socket metadata (ancillary loads), which XDP and TC programs cannot read.
var liveOnly = []string{"inbound", "outbound", "ifindex", "ifname", "on ", "rulenum", "reason", "rset", "srnr", "subrule"}

// Compile compiles a tcpdump expression for a pcap link type with libpcap.
func Compile(expr string, linkType uint16) ([]bpf.RawInstruction, error) {
	insns, err := pcap.CompileBPFFilter(layers.LinkType(linkType), compileSnapLen, expr)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", expr, err)
	}
	raw := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	if usesAncillary(raw) {
		return nil, fmt.Errorf("compile filter %q: %w", expr, ErrLiveOnly)
	}
	return raw, nil
}

// ErrLiveOnly: the expression needs socket metadata of a live capture.
var ErrLiveOnly = errors.New("the expression needs metadata of a live socket (" + strings.Join(liveOnly[:3], ", ") + ", ...), which XDP and TC programs do not have")

// ErrUnsupported is wrapped by translation errors for opcodes or loads the
// translator does not handle.
var ErrUnsupported = errors.New("unsupported classic BPF")

// skfAdOff is SKF_AD_OFF: absolute loads at or above it read Linux
// ancillary data instead of the packet.
const skfAdOff = 0xfffff000

func usesAncillary(prog []bpf.RawInstruction) bool {
	for _, in := range prog {
		if in.Op&0x07 == classLD || in.Op&0x07 == classLDX {
			if mode := in.Op & 0xe0; (mode == modeABS || mode == modeIND) && in.K >= skfAdOff {
				return true
			}
		}
	}
	return false
}
