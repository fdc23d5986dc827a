package trafficgen

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// CountRx returns the rx_packets counter of h's veth end, read over
// netlink from inside h's namespace. On a veth it counts frames delivered
// to the link, including those an XDP program then dropped.
func CountRx(h testbed.Host) (uint64, error) {
	var n uint64
	err := h.Do(func() error {
		l, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return fmt.Errorf("find %s: %w", h.Link, err)
		}
		st := l.Attrs().Statistics
		if st == nil {
			return fmt.Errorf("no statistics for %s", h.Link)
		}
		n = st.RxPackets
		return nil
	})
	return n, err
}

// CountTxDropped returns the tx_dropped counter of h's veth end, read
// over netlink from inside h's namespace. On a veth it counts the frames
// sent (XDP live frames included) that its peer's ring had no room for.
func CountTxDropped(h testbed.Host) (uint64, error) {
	var n uint64
	err := h.Do(func() error {
		l, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return fmt.Errorf("find %s: %w", h.Link, err)
		}
		st := l.Attrs().Statistics
		if st == nil {
			return fmt.Errorf("no statistics for %s", h.Link)
		}
		n = st.TxDropped
		return nil
	})
	return n, err
}
