package trafficgen

import "encoding/binary"

// BuildARP builds an Ethernet (+ tags) ARP request from SrcMAC/Src asking
// for Dst, or with ARPReply a reply telling DstMAC/Dst that Src is at
// SrcMAC. Payload or Size add zero padding after the 28-byte ARP body.
// DstMAC defaults to broadcast for requests.
func BuildARP(o FrameOpts) ([]byte, error) {
	if o.DstMAC == nil && !o.ARPReply {
		o.DstMAC = broadcastMAC
	}
	o.MPLS = nil
	o, err := o.resolve(false)
	if err != nil {
		return nil, err
	}
	n, err := o.payloadLen(o.l2Len() + 28)
	if err != nil {
		return nil, err
	}
	b := o.appendL2(nil, etherARP)
	b = binary.BigEndian.AppendUint16(b, 1) // Ethernet
	b = binary.BigEndian.AppendUint16(b, uint16(etherIPv4))
	b = append(b, 6, 4)
	op, target := uint16(1), make([]byte, 6)
	if o.ARPReply {
		op, target = 2, o.DstMAC
	}
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(b, o.SrcMAC...)
	b = append(b, o.Src.AsSlice()...)
	b = append(b, target...)
	b = append(b, o.Dst.AsSlice()...)
	return append(b, make([]byte, n)...), nil
}

var broadcastMAC = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
