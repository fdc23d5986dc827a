package trafficgen

import (
	"encoding/binary"
	"fmt"
)

// BuildUDP6 builds Ethernet (+ tags) / IPv6 (+ extension headers) / UDP.
func BuildUDP6(o FrameOpts) ([]byte, error) { return build6(o, protoUDP) }

// BuildTCP6 builds Ethernet (+ tags) / IPv6 (+ extension headers) / TCP.
func BuildTCP6(o FrameOpts) ([]byte, error) { return build6(o, protoTCP) }

// BuildICMP6 builds Ethernet (+ tags) / IPv6 (+ extension headers) /
// ICMPv6 echo request, with identifier SrcPort and sequence number DstPort.
func BuildICMP6(o FrameOpts) ([]byte, error) { return build6(o, protoICMPv6) }

// extHeaders returns the extension headers FrameOpts asks for, in RFC 8200
// order, with their Next Header fields chained to proto, and the Next
// Header value for the IPv6 header.
func (o FrameOpts) extHeaders(proto uint8) (uint8, []byte) {
	type ext struct {
		typ  uint8
		body []byte // 8 bytes; byte 0 (Next Header) is filled in below
	}
	var exts []ext
	padN := []byte{0, 0, 1, 4, 0, 0, 0, 0} // Hdr Ext Len 0, PadN of 4 bytes
	if o.HopByHop {
		exts = append(exts, ext{protoHBH, padN})
	}
	if o.DestOpts {
		exts = append(exts, ext{protoDstOpt, padN})
	}
	if f := o.Fragment; f != nil {
		b := make([]byte, 8)
		off := f.Offset // multiple of 8: the low 3 bits carry the flags
		if f.More {
			off |= 1
		}
		binary.BigEndian.PutUint16(b[2:], off)
		binary.BigEndian.PutUint32(b[4:], f.ID)
		exts = append(exts, ext{protoFrag, b})
	}
	var out []byte
	next := proto
	for i := len(exts) - 1; i >= 0; i-- {
		e := append([]byte{}, exts[i].body...)
		e[0] = next
		next = exts[i].typ
		out = append(e, out...)
	}
	return next, out
}

func build6(o FrameOpts, proto uint8) ([]byte, error) {
	o, err := o.resolve(true)
	if err != nil {
		return nil, err
	}
	if len(o.IPv4Options) > 0 {
		return nil, fmt.Errorf("ipv4 options on an ipv6 frame")
	}
	next, ext := o.extHeaders(proto)
	l4hdr := l4HeaderLen(proto)
	if o.Fragment != nil && o.Fragment.Offset > 0 {
		l4hdr = 0
	}
	n, err := o.payloadLen(o.l2Len() + 40 + len(ext) + l4hdr)
	if err != nil {
		return nil, err
	}
	plen := len(ext) + l4hdr + n
	if plen > 0xffff {
		return nil, fmt.Errorf("ipv6 payload of %d bytes needs a jumbogram", plen)
	}
	b := o.appendL2(make([]byte, 0, o.l2Len()+40+plen), etherIPv6)
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(plen))
	h[6] = next
	h[7] = o.TTL
	copy(h[8:24], o.Src.AsSlice())
	copy(h[24:40], o.Dst.AsSlice())
	b = append(append(b, h...), ext...)
	if l4hdr == 0 {
		return append(b, o.payload(n)...), nil
	}
	return append(b, l4(o, proto, o.Src, o.Dst, o.payload(n))...), nil
}
