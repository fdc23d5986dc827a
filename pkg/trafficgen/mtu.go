package trafficgen

// BuildMTU builds the largest frame of its kind that fits a link of the
// given MTU: the L3 packet (with MPLS labels, if any) is exactly mtu bytes
// and the frame is mtu + 14 + 4 per VLAN tag. Use it for jumbo frames:
// BuildMTU(BuildUDP4, FrameOpts{}, 9000). o.Payload and o.Size are ignored.
func BuildMTU(build Builder, o FrameOpts, mtu int) ([]byte, error) {
	o.Payload = 0
	o.Size = 14 + 4*len(o.VLANs) + mtu
	return build(o)
}
