package capture

// RingUsage sums, over the rings of c's interfaces, the bytes written and
// not read yet, and the consumer positions: whether records wait in the
// rings, and whether the readers are taking them. Both are 0 once the
// interface is released.
func RingUsage(c *Capture) (unread, consumed uint64) {
	seen := map[*ifaceState]bool{}
	for _, m := range c.members {
		if seen[m.iface] {
			continue
		}
		seen[m.iface] = true
		for _, r := range m.iface.readers {
			unread += r.AvailableBytes()
			consumed += r.ConsumerPos()
		}
	}
	return unread, consumed
}
