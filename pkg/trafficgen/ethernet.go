package trafficgen

import "encoding/binary"

// EtherTypes used by the builders.
const (
	etherIPv4 uint16 = 0x0800
	etherARP  uint16 = 0x0806
	etherVLAN uint16 = 0x8100
	etherIPv6 uint16 = 0x86dd
	etherMPLS uint16 = 0x8847
	etherQinQ uint16 = 0x88a8
)

// l2Len is the length of the Ethernet header with tags and MPLS labels.
func (o FrameOpts) l2Len() int { return 14 + 4*len(o.VLANs) + 4*len(o.MPLS) }

// appendL2 appends the Ethernet header, VLAN tags and MPLS labels for a
// packet of etherType.
func (o FrameOpts) appendL2(b []byte, etherType uint16) []byte {
	b = append(b, o.DstMAC...)
	b = append(b, o.SrcMAC...)
	for i, tci := range o.VLANs {
		tpid := etherVLAN
		if i < len(o.VLANs)-1 {
			tpid = etherQinQ
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, tci)
	}
	if len(o.MPLS) == 0 {
		return binary.BigEndian.AppendUint16(b, etherType)
	}
	b = binary.BigEndian.AppendUint16(b, etherMPLS)
	for i, label := range o.MPLS {
		v := label<<12 | defaultTTL
		if i == len(o.MPLS)-1 {
			v |= 1 << 8 // bottom of stack
		}
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}
