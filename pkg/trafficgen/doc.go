// Package trafficgen builds Ethernet frames and sends them between test
// hosts made by package testbed.
//
// Promises:
//   - Frame builders (BuildUDP4, BuildTCP4, BuildICMP4, BuildUDP6, BuildTCP6,
//     BuildICMP6, BuildARP) are pure Go and deterministic: the same FrameOpts
//     give the same bytes. IPv4 header checksums and UDP, TCP, ICMP and
//     ICMPv6 checksums (with the IPv4 or IPv6 pseudo header) are correct,
//     except where FrameOpts.Fragment says otherwise. Frames carry no FCS.
//     With FrameOpts.Size the frame is exactly that long.
//   - Corpus returns the same few hundred named frames on every call, each
//     60 to 1518 bytes (fitting MTU 1500), using addresses from
//     198.18.0.0/15 and 2001:db8::/32 only (and well-known multicast and
//     broadcast addresses).
//   - SendRaw (Linux) sends frames unchanged from a host's veth with an
//     AF_PACKET socket, through the sender's TC egress to the peer's XDP and
//     TC ingress.
//   - LiveSender (Linux) transmits one frame many times with BPF_PROG_RUN in
//     XDP live-frames mode, from a locked thread inside the host's
//     namespace, stoppable by a context and paced to a rate. Its Result says
//     exactly what was counted; see Result.Sent.
//   - AttachPass and AttachDrop (Linux) attach counting XDP programs so the
//     peer receives live frames and a test can count them; CountRx reads a
//     link's rx_packets.
//
// Known kernel hazard: never attach or detach an XDP program on either end
// of a veth pair while a LiveSender runs on it; stop the sender first.
package trafficgen
