package testbed

import (
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netns"
)

// Host is one end of a Pair: a network namespace with one veth end in it.
// Host is a plain value; it stays valid until the Pair is closed.
type Host struct {
	// NS is an open handle on the namespace, owned by the Pair (do not
	// close it). Use it with netlink.NewHandleAt and the like.
	NS netns.NsHandle
	// NSName is the `ip netns` name of the namespace.
	NSName string
	// NSPath is /run/netns/NSName: other processes can enter the namespace
	// with setns on it, `ip netns exec NSName`, or a --netns PATH flag.
	NSPath string
	// Link is the name of the veth end inside the namespace.
	Link string
	// Index is the interface index of Link inside the namespace.
	Index int
	// MAC is Link's hardware address.
	MAC net.HardwareAddr
	// IPv4 is Link's address (prefix length 24).
	IPv4 netip.Addr
	// IPv6 is Link's global address (prefix length 64), or the zero Addr
	// when the Pair was built without IPv6.
	IPv6 netip.Addr
}

// Pair is two Hosts whose veth ends are each other's peer.
type Pair struct {
	A, B Host

	mu     sync.Mutex
	closed bool
	err    error
}
