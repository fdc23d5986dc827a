package trafficgen

import (
	"encoding/binary"
	"fmt"
)

// BuildUDP4 builds Ethernet (+ tags) / IPv4 / UDP.
func BuildUDP4(o FrameOpts) ([]byte, error) { return build4(o, protoUDP) }

// BuildTCP4 builds Ethernet (+ tags) / IPv4 / TCP (no TCP options).
func BuildTCP4(o FrameOpts) ([]byte, error) { return build4(o, protoTCP) }

// BuildICMP4 builds Ethernet (+ tags) / IPv4 / ICMP echo request, with
// identifier SrcPort and sequence number DstPort.
func BuildICMP4(o FrameOpts) ([]byte, error) { return build4(o, protoICMP) }

func build4(o FrameOpts, proto uint8) ([]byte, error) {
	o, err := o.resolve(false)
	if err != nil {
		return nil, err
	}
	ihl := 20 + (len(o.IPv4Options)+3)&^3
	l4hdr := l4HeaderLen(proto)
	if o.Fragment != nil && o.Fragment.Offset > 0 {
		l4hdr = 0
	}
	n, err := o.payloadLen(o.l2Len() + ihl + l4hdr)
	if err != nil {
		return nil, err
	}
	total := ihl + l4hdr + n
	if total > 0xffff {
		return nil, fmt.Errorf("ipv4 packet of %d bytes is too long", total)
	}
	b := o.appendL2(make([]byte, 0, o.l2Len()+total), etherIPv4)
	ip := len(b)
	b = append(b, make([]byte, ihl)...)
	h := b[ip:]
	h[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	var flags uint16
	if f := o.Fragment; f != nil {
		binary.BigEndian.PutUint16(h[4:], uint16(f.ID))
		flags = f.Offset / 8
		if f.More {
			flags |= 0x2000
		}
	}
	binary.BigEndian.PutUint16(h[6:], flags)
	h[8] = o.TTL
	h[9] = proto
	copy(h[12:16], o.Src.AsSlice())
	copy(h[16:20], o.Dst.AsSlice())
	copy(h[20:], o.IPv4Options)
	binary.BigEndian.PutUint16(h[10:], fold(sum(0, h)))
	if l4hdr == 0 {
		return append(b, o.payload(n)...), nil
	}
	return append(b, l4(o, proto, o.Src, o.Dst, o.payload(n))...), nil
}
