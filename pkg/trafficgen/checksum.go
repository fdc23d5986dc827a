package trafficgen

import (
	"encoding/binary"
	"net/netip"
)

// sum adds b to a running one's complement sum (RFC 1071), padding an odd
// final byte with zero.
func sum(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// fold finishes a sum into a checksum field value.
func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}

// pseudoSum is the sum of the IPv4 or IPv6 pseudo header for an upper-layer
// packet of length n.
func pseudoSum(src, dst netip.Addr, proto uint8, n int) uint32 {
	acc := sum(0, src.AsSlice())
	acc = sum(acc, dst.AsSlice())
	if src.Is4() {
		return acc + uint32(proto) + uint32(n)
	}
	return acc + uint32(n>>16) + uint32(n&0xffff) + uint32(proto)
}
