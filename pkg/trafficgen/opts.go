package trafficgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// FrameOpts describes a frame. Zero values get defaults: MACs
// 02:00:00:00:00:01 → 02:00:00:00:00:02, addresses 198.18.0.1 → 198.18.0.2
// (2001:db8::1 → 2001:db8::2 for IPv6 builders), ports 1024 → 9, TTL (hop
// limit) 64, an empty payload, no tags.
type FrameOpts struct {
	SrcMAC, DstMAC net.HardwareAddr
	// Src and Dst must be of the builder's family when set.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the UDP or TCP ports; for ICMP echo they are
	// the identifier and the sequence number.
	SrcPort, DstPort uint16
	// VLANs are 802.1Q tag control values (PCP<<13 | DEI<<12 | VID),
	// outermost first. With two or more tags, all but the innermost use the
	// 802.1ad TPID 0x88a8 (QinQ); the innermost uses 0x8100.
	VLANs []uint16
	// MPLS is a label stack (20-bit labels, outermost first) between the
	// Ethernet header (EtherType 0x8847) and the IP packet. TTL 64;
	// bottom-of-stack is set on the last label.
	MPLS []uint32
	// Payload is the length of the bytes after the L4 header (after the ARP
	// body for BuildARP, as trailing padding). Exclusive with Size.
	Payload int
	// Size is the total frame length without FCS; the payload (or ARP
	// padding) is sized to hit it exactly. Exclusive with Payload.
	Size int
	// TCPFlags are the TCP flag bits (see TCPFin and friends); 0 is a TCP
	// segment with no flags.
	TCPFlags uint8
	// TTL is the IPv4 TTL or IPv6 hop limit; 0 means 64.
	TTL uint8
	// IPv4Options are raw IPv4 option bytes, zero-padded to a multiple of 4
	// (at most 40).
	IPv4Options []byte
	// Fragment makes the IP packet a fragment: IPv4 header fields, or an
	// IPv6 fragment extension header.
	Fragment *Fragment
	// HopByHop adds an IPv6 Hop-by-Hop Options header (one PadN option).
	HopByHop bool
	// DestOpts adds an IPv6 Destination Options header (one PadN option)
	// after Hop-by-Hop and before Fragment.
	DestOpts bool
	// ARPReply makes BuildARP build a reply (to DstMAC) instead of a
	// request.
	ARPReply bool
	// Seed varies the payload bytes: byte i is byte(i) + Seed.
	Seed byte
}

// Fragment describes an IP fragment. A fragment with Offset 0 carries the
// L4 header, whose length field and checksum cover only the bytes in this
// frame (as if the datagram ended there). Fragments with Offset > 0 carry
// payload bytes only; their IP protocol field still names the L4 protocol.
type Fragment struct {
	// ID is the identification (16 bits used for IPv4).
	ID uint32
	// Offset is in bytes and must be a multiple of 8.
	Offset uint16
	// More sets the more-fragments flag.
	More bool
}

// TCP flag bits for FrameOpts.TCPFlags.
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// Builder is the signature shared by the Build functions.
type Builder func(FrameOpts) ([]byte, error)

// Must returns b, or panics with err; for tests with constant options.
func Must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

var (
	defaultSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	defaultDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	defaultSrc4   = netip.MustParseAddr("198.18.0.1")
	defaultDst4   = netip.MustParseAddr("198.18.0.2")
	defaultSrc6   = netip.MustParseAddr("2001:db8::1")
	defaultDst6   = netip.MustParseAddr("2001:db8::2")
)

const (
	defaultSrcPort = 1024
	defaultDstPort = 9 // discard
	defaultTTL     = 64
	maxIPv4Options = 40
)

// resolve fills defaults and checks what every builder needs. ipv6 says
// which address family the builder uses.
func (o FrameOpts) resolve(ipv6 bool) (FrameOpts, error) {
	if o.SrcMAC == nil {
		o.SrcMAC = defaultSrcMAC
	}
	if o.DstMAC == nil {
		o.DstMAC = defaultDstMAC
	}
	if len(o.SrcMAC) != 6 || len(o.DstMAC) != 6 {
		return o, fmt.Errorf("mac addresses must be 6 bytes, got %d and %d", len(o.SrcMAC), len(o.DstMAC))
	}
	src, dst := defaultSrc4, defaultDst4
	if ipv6 {
		src, dst = defaultSrc6, defaultDst6
	}
	if !o.Src.IsValid() {
		o.Src = src
	}
	if !o.Dst.IsValid() {
		o.Dst = dst
	}
	for _, a := range []netip.Addr{o.Src, o.Dst} {
		if ipv6 != (a.Is6() && !a.Is4In6()) {
			return o, fmt.Errorf("address %v is not of the frame's family", a)
		}
	}
	if o.SrcPort == 0 {
		o.SrcPort = defaultSrcPort
	}
	if o.DstPort == 0 {
		o.DstPort = defaultDstPort
	}
	if o.TTL == 0 {
		o.TTL = defaultTTL
	}
	if o.Payload < 0 || o.Size < 0 {
		return o, errors.New("negative payload or size")
	}
	if o.Payload > 0 && o.Size > 0 {
		return o, errors.New("payload and size are exclusive")
	}
	if len(o.IPv4Options) > maxIPv4Options {
		return o, fmt.Errorf("%d bytes of ipv4 options, at most %d", len(o.IPv4Options), maxIPv4Options)
	}
	if f := o.Fragment; f != nil && f.Offset%8 != 0 {
		return o, fmt.Errorf("fragment offset %d is not a multiple of 8", f.Offset)
	}
	for _, l := range o.MPLS {
		if l >= 1<<20 {
			return o, fmt.Errorf("mpls label %d does not fit in 20 bits", l)
		}
	}
	return o, nil
}

// payloadLen is the payload length given the length of everything else in
// the frame.
func (o FrameOpts) payloadLen(headers int) (int, error) {
	if o.Size == 0 {
		return o.Payload, nil
	}
	if o.Size < headers {
		return 0, fmt.Errorf("size %d is smaller than the %d bytes of headers", o.Size, headers)
	}
	return o.Size - headers, nil
}

// payload is n bytes of the Seed pattern.
func (o FrameOpts) payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i) + o.Seed
	}
	return p
}
