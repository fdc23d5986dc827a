package filter

import (
	"fmt"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/net/bpf"
)

// CompileSnapLen is the snapshot length Compile gives libpcap. It only
// shows in the accepting `ret #262144` (any non-zero return accepts).
const CompileSnapLen = 262144

// Compile compiles a tcpdump expression with libpcap (optimized, netmask
// unknown) for a pcap link type: 1 Ethernet, 101 raw IP, 0 and 108 BSD
// loopback, ... Expressions that libpcap implements with Linux socket
// metadata (inbound, outbound, ifindex, ...) are refused with ErrLiveOnly.
func Compile(expr string, linkType uint16) ([]bpf.RawInstruction, error) {
	dlt := int(linkType)
	if d, ok := linkTypeToDLT[linkType]; ok {
		dlt = d
	}
	insns, err := pcap.CompileBPFFilter(layers.LinkType(dlt), CompileSnapLen, expr)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", expr, err)
	}
	raw := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	if pc, name, ok := firstAncillary(raw); ok {
		return nil, fmt.Errorf("compile filter %q: %w (instruction %d reads %s)", expr, ErrLiveOnly, pc, name)
	}
	return raw, nil
}

// linkTypeToDLT maps the pcap file link types whose libpcap DLT_ value
// differs (libpcap's linktype_to_dlt, Linux values): pcap_open_dead takes
// a DLT_.
var linkTypeToDLT = map[uint16]int{
	100: 11, // ATM_RFC1483
	101: 12, // RAW
	102: 15, // SLIP_BSDOS
	103: 16, // PPP_BSDOS
}

// firstAncillary finds the first load of Linux socket metadata.
func firstAncillary(prog []bpf.RawInstruction) (pc int, name string, ok bool) {
	for pc, in := range prog {
		if in.Op&0x07 == classLD && in.Op&0xe0 == modeABS && in.K >= skfAdOff {
			name, ok := ancillary[in.K-skfAdOff]
			if !ok {
				name = fmt.Sprintf("SKF_AD_OFF%+d", int32(in.K-skfAdOff))
			}
			return pc, "the socket's " + strings.ReplaceAll(name, "_", " "), true
		}
	}
	return 0, "", false
}
