package testbed

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// naming is the set of names and numbers derived from one random draw.
type naming struct {
	a, b   string // namespace and interface names of the two ends
	subnet byte   // X in 198.18.X.0/24 and 2001:db8:X::/64
	macA   net.HardwareAddr
	macB   net.HardwareAddr
}

func newNaming(prefix string) naming {
	r := rand.Uint32()
	suffix := fmt.Sprintf("%06x", r&0xffffff)
	base := prefix + "-" + suffix
	// Locally administered unicast MACs: 02:SS:SS:SS:00:0a and :0b, where
	// SS is the name suffix.
	mac := func(end byte) net.HardwareAddr {
		return net.HardwareAddr{0x02, byte(r >> 16), byte(r >> 8), byte(r), 0x00, end}
	}
	return naming{
		a:      base + "-a",
		b:      base + "-b",
		subnet: byte(r >> 24),
		macA:   mac(0x0a),
		macB:   mac(0x0b),
	}
}
