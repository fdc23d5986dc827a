package trafficgen

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// CountRx returns the rx_packets counter of h's veth end, read over
// netlink. On a veth it counts frames delivered to the link, including
// those an XDP program then dropped.
func CountRx(h testbed.Host) (uint64, error) {
	nl, err := netlink.NewHandleAt(h.NS)
	if err != nil {
		return 0, fmt.Errorf("netlink handle in %s: %w", h.NSName, err)
	}
	defer nl.Close()
	l, err := nl.LinkByIndex(h.Index)
	if err != nil {
		return 0, fmt.Errorf("find %s: %w", h.Link, err)
	}
	st := l.Attrs().Statistics
	if st == nil {
		return 0, fmt.Errorf("no statistics for %s", h.Link)
	}
	return st.RxPackets, nil
}
