package trafficgen

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers.
const (
	protoICMP   uint8 = 1
	protoTCP    uint8 = 6
	protoUDP    uint8 = 17
	protoICMPv6 uint8 = 58
	protoHBH    uint8 = 0
	protoFrag   uint8 = 44
	protoDstOpt uint8 = 60
)

// l4HeaderLen is the length of the header the builders write for proto.
func l4HeaderLen(proto uint8) int {
	if proto == protoTCP {
		return 20
	}
	return 8 // UDP, ICMP and ICMPv6 echo
}

// l4 builds the L4 header and payload for proto with its checksum, which
// covers the pseudo header of src and dst (ICMPv4 has none).
func l4(o FrameOpts, proto uint8, src, dst netip.Addr, payload []byte) []byte {
	n := l4HeaderLen(proto)
	b := make([]byte, n, n+len(payload))
	var csum int // offset of the checksum field
	switch proto {
	case protoUDP:
		binary.BigEndian.PutUint16(b[0:], o.SrcPort)
		binary.BigEndian.PutUint16(b[2:], o.DstPort)
		binary.BigEndian.PutUint16(b[4:], uint16(n+len(payload)))
		csum = 6
	case protoTCP:
		binary.BigEndian.PutUint16(b[0:], o.SrcPort)
		binary.BigEndian.PutUint16(b[2:], o.DstPort)
		binary.BigEndian.PutUint32(b[4:], 1) // sequence number
		if o.TCPFlags&TCPAck != 0 {
			binary.BigEndian.PutUint32(b[8:], 1)
		}
		b[12] = 5 << 4 // data offset: 20 bytes, no options
		b[13] = o.TCPFlags
		binary.BigEndian.PutUint16(b[14:], 65535) // window
		csum = 16
	case protoICMP, protoICMPv6:
		b[0] = 8 // echo request
		if proto == protoICMPv6 {
			b[0] = 128
		}
		binary.BigEndian.PutUint16(b[4:], o.SrcPort)
		binary.BigEndian.PutUint16(b[6:], o.DstPort)
		csum = 2
	}
	b = append(b, payload...)
	var acc uint32
	if proto != protoICMP {
		acc = pseudoSum(src, dst, proto, len(b))
	}
	c := fold(sum(acc, b))
	if c == 0 && proto == protoUDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(b[csum:], c)
	return b
}
