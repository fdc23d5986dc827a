package trafficgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
)

// Frame is a named frame.
type Frame struct {
	// Name is short, unique in the corpus, and says what the frame is,
	// such as "udp4/size=128" or "qinq100.200/tcp4".
	Name string
	Data []byte
}

// Corpus sizes: total frame lengths without FCS, from the Ethernet minimum
// to a full 1500-byte MTU.
var corpusSizes = []int{60, 61, 64, 65, 97, 128, 256, 511, 512, 1000, 1024, 1280, 1499, 1500, 1514}

// corpusMinFrame is the Ethernet minimum without FCS; shorter frames get
// zero padding after the packet, as a NIC would add.
const corpusMinFrame = 60

// Corpus returns a deterministic, varied list of a few hundred frames: TCP,
// UDP and ICMP over IPv4 and IPv6 at many sizes, ARP, TCP flag
// combinations, odd payload lengths, VLAN, QinQ and triple tags, IPv4
// options and fragments, IPv6 Hop-by-Hop, Destination Options and Fragment
// headers, MPLS stacks, 802.3 LLC and LLC/SNAP, broadcast and multicast
// destinations, and many addresses and ports. Every frame is 60 to 1518
// bytes: at most a 1500-byte L3 packet (MPLS labels included) plus the
// Ethernet header and VLAN tags, so each fits a link of MTU 1500; short
// packets are followed by zero padding. Every checksum is valid except in
// fragments.
func Corpus() []Frame {
	c := &corpus{}
	c.sizes()
	c.payloads()
	c.tcpFlags()
	c.vlans()
	c.ipv4Extras()
	c.ipv6Extras()
	c.mpls()
	c.llc()
	c.groupAddrs()
	c.addresses()
	return c.frames
}

type corpus struct{ frames []Frame }

func (c *corpus) add(name string, b []byte, err error) {
	if err != nil {
		panic(fmt.Sprintf("corpus frame %s: %v", name, err)) // a bug in this file
	}
	for len(b) < corpusMinFrame {
		b = append(b, 0)
	}
	c.frames = append(c.frames, Frame{Name: name, Data: b})
}

var l4Builders = []struct {
	name  string
	build Builder
	min   int // smallest frame the builder makes (untagged)
}{
	{"udp4", BuildUDP4, 42},
	{"tcp4", BuildTCP4, 54},
	{"icmp4", BuildICMP4, 42},
	{"udp6", BuildUDP6, 62},
	{"tcp6", BuildTCP6, 74},
	{"icmp6", BuildICMP6, 62},
}

func (c *corpus) sizes() {
	for _, b := range l4Builders {
		for i, size := range corpusSizes {
			if size < b.min {
				continue
			}
			f, err := b.build(FrameOpts{Size: size, Seed: byte(i), TCPFlags: TCPAck | TCPPsh})
			c.add(fmt.Sprintf("%s/size=%d", b.name, size), f, err)
		}
	}
	for _, size := range []int{60, 64, 128} {
		f, err := BuildARP(FrameOpts{Size: size})
		c.add(fmt.Sprintf("arp/size=%d", size), f, err)
	}
	f, err := BuildARP(FrameOpts{ARPReply: true, Src: defaultDst4, Dst: defaultSrc4, SrcMAC: defaultDstMAC, DstMAC: defaultSrcMAC, Size: 60})
	c.add("arp-reply", f, err)
}

// payloads covers odd lengths, where checksums pad with a zero byte.
func (c *corpus) payloads() {
	for _, b := range l4Builders {
		for _, n := range []int{0, 1, 2, 3, 7} {
			f, err := b.build(FrameOpts{Payload: n, TCPFlags: TCPAck})
			c.add(fmt.Sprintf("%s/payload=%d", b.name, n), f, err)
		}
	}
}

func (c *corpus) tcpFlags() {
	for _, fl := range []struct {
		name  string
		flags uint8
	}{
		{"syn", TCPSyn}, {"synack", TCPSyn | TCPAck}, {"ack", TCPAck}, {"pshack", TCPPsh | TCPAck},
		{"finack", TCPFin | TCPAck}, {"rst", TCPRst}, {"rstack", TCPRst | TCPAck},
		{"null", 0}, {"xmas", TCPFin | TCPPsh | TCPUrg}, {"synece", TCPSyn | TCPEce | TCPCwr},
	} {
		for _, v := range []struct {
			name  string
			build Builder
		}{{"tcp4", BuildTCP4}, {"tcp6", BuildTCP6}} {
			f, err := v.build(FrameOpts{TCPFlags: fl.flags, SrcPort: 40000, DstPort: 443, Size: 80})
			c.add(fmt.Sprintf("%s/flags=%s", v.name, fl.name), f, err)
		}
	}
}

func (c *corpus) vlans() {
	single := []struct {
		name string
		tci  uint16
	}{{"vlan1", 1}, {"vlan100", 100}, {"vlan4094", 4094}, {"vlan10pcp5", 5<<13 | 10}}
	for _, v := range single {
		for _, b := range []struct {
			name  string
			build Builder
		}{{"udp4", BuildUDP4}, {"tcp6", BuildTCP6}, {"icmp4", BuildICMP4}, {"arp", BuildARP}} {
			f, err := b.build(FrameOpts{VLANs: []uint16{v.tci}, Size: 96, TCPFlags: TCPSyn})
			c.add(v.name+"/"+b.name, f, err)
		}
		f, err := BuildUDP4(FrameOpts{VLANs: []uint16{v.tci}, Size: 1518})
		c.add(v.name+"/udp4/size=1518", f, err)
	}
	for _, tags := range [][]uint16{{100, 200}, {4094, 1}, {10, 20}} {
		name := fmt.Sprintf("qinq%d.%d", tags[0], tags[1])
		for _, b := range []struct {
			name  string
			build Builder
		}{{"udp4", BuildUDP4}, {"udp6", BuildUDP6}, {"tcp4", BuildTCP4}} {
			f, err := b.build(FrameOpts{VLANs: tags, Size: 128, TCPFlags: TCPAck})
			c.add(name+"/"+b.name, f, err)
		}
	}
	f, err := BuildUDP4(FrameOpts{VLANs: []uint16{1, 2, 3}, Size: 100})
	c.add("vlan1.2.3/udp4", f, err)
}

func (c *corpus) ipv4Extras() {
	opts := []struct {
		name string
		b    []byte
	}{
		{"ra", []byte{0x94, 0x04, 0x00, 0x00}},                    // router alert
		{"nop-eol", []byte{0x01, 0x01, 0x01, 0x00}},               // NOPs, end of list
		{"ts", []byte{0x44, 12, 5, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}}, // timestamp, room for 2
		{"rr", []byte{0x07, 11, 4, 198, 18, 0, 1, 0, 0, 0, 0}},    // record route
		{"max", append([]byte{0x07, 39, 4}, make([]byte, 36)...)}, // 40 bytes of options
		{"lsrr", []byte{0x83, 7, 4, 198, 18, 0, 2, 0x01}},         // loose source route + NOP
	}
	for _, o := range opts {
		for _, b := range []struct {
			name  string
			build Builder
		}{{"udp4", BuildUDP4}, {"tcp4", BuildTCP4}} {
			f, err := b.build(FrameOpts{IPv4Options: o.b, Payload: 16, TCPFlags: TCPSyn})
			c.add(fmt.Sprintf("%s/ipopt=%s", b.name, o.name), f, err)
		}
	}
	frags := []struct {
		name string
		frag Fragment
	}{
		{"first", Fragment{ID: 0x1111, More: true}},
		{"middle", Fragment{ID: 0x1111, Offset: 1480, More: true}},
		{"last", Fragment{ID: 0x1111, Offset: 2960}},
	}
	for _, fr := range frags {
		for _, b := range []struct {
			name  string
			build Builder
		}{{"udp4", BuildUDP4}, {"tcp4", BuildTCP4}, {"icmp4", BuildICMP4}} {
			frag := fr.frag
			f, err := b.build(FrameOpts{Fragment: &frag, Size: 200, TCPFlags: TCPAck})
			c.add(fmt.Sprintf("%s/frag=%s", b.name, fr.name), f, err)
		}
	}
}

func (c *corpus) ipv6Extras() {
	for _, e := range []struct {
		name string
		o    FrameOpts
	}{
		{"hbh", FrameOpts{HopByHop: true}},
		{"dstopts", FrameOpts{DestOpts: true}},
		{"hbh+dstopts", FrameOpts{HopByHop: true, DestOpts: true}},
		{"frag-first", FrameOpts{Fragment: &Fragment{ID: 7, More: true}}},
		{"frag-middle", FrameOpts{Fragment: &Fragment{ID: 7, Offset: 1232, More: true}}},
		{"frag-last", FrameOpts{Fragment: &Fragment{ID: 7, Offset: 2464}}},
		{"hbh+frag", FrameOpts{HopByHop: true, Fragment: &Fragment{ID: 8, More: true}}},
		{"hbh+dstopts+frag", FrameOpts{HopByHop: true, DestOpts: true, Fragment: &Fragment{ID: 9, Offset: 8}}},
	} {
		for _, b := range []struct {
			name  string
			build Builder
		}{{"udp6", BuildUDP6}, {"tcp6", BuildTCP6}, {"icmp6", BuildICMP6}} {
			o := e.o
			o.Size, o.TCPFlags = 150, TCPAck
			f, err := b.build(o)
			c.add(fmt.Sprintf("%s/%s", b.name, e.name), f, err)
		}
	}
}

func (c *corpus) mpls() {
	for _, labels := range [][]uint32{{16}, {100, 200}, {1000, 2000, 3000}} {
		for _, b := range []struct {
			name  string
			build Builder
		}{{"udp4", BuildUDP4}, {"udp6", BuildUDP6}} {
			f, err := b.build(FrameOpts{MPLS: labels, Size: 128})
			c.add(fmt.Sprintf("mpls%d/%s", len(labels), b.name), f, err)
		}
	}
}

// llc adds IEEE 802.3 frames (a length instead of an EtherType).
func (c *corpus) llc() {
	dot3 := func(dst net.HardwareAddr, body []byte) []byte {
		b := append(append([]byte{}, dst...), defaultSrcMAC...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
		return append(b, body...)
	}
	snap := func(etherType uint16, pkt []byte) []byte {
		b := []byte{0xaa, 0xaa, 0x03, 0, 0, 0}
		return append(binary.BigEndian.AppendUint16(b, etherType), pkt...)
	}
	udp := Must(BuildUDP4(FrameOpts{Payload: 40}))[14:]
	c.add("llc-snap/udp4", dot3(defaultDstMAC, snap(etherIPv4, udp)), nil)
	arp := Must(BuildARP(FrameOpts{}))[14:]
	c.add("llc-snap/arp", dot3(broadcastMAC, snap(etherARP, arp)), nil)
	// Spanning tree configuration BPDU to the bridge group address.
	bpdu := []byte{0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0x80, 0, 0x02, 0, 0, 0, 0, 0x01,
		0, 0, 0, 0, 0x80, 0, 0x02, 0, 0, 0, 0, 0x01, 0x80, 0x01, 0, 0, 0x14, 0, 0x02, 0, 0x0f, 0}
	c.add("llc/stp", dot3(net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0}, bpdu), nil)
	udp6 := Must(BuildUDP6(FrameOpts{Payload: 10}))[14:]
	c.add("llc-snap/udp6", dot3(defaultDstMAC, snap(etherIPv6, udp6)), nil)
}

func (c *corpus) groupAddrs() {
	// Multicast UDP goes to the mDNS groups but the discard port: a
	// payload that is not DNS on the mDNS port looks malformed to
	// dissectors.
	group4 := netip.MustParseAddr("224.0.0.251")
	group6 := netip.MustParseAddr("ff02::fb")
	allNodes := netip.MustParseAddr("ff02::1")
	add := func(name string, build Builder, o FrameOpts) {
		f, err := build(o)
		c.add(name, f, err)
	}
	add("bcast/udp4", BuildUDP4, FrameOpts{DstMAC: broadcastMAC, Dst: netip.MustParseAddr("198.19.255.255"), SrcPort: 68, DstPort: 67, Payload: 300})
	add("bcast/udp4-limited", BuildUDP4, FrameOpts{DstMAC: broadcastMAC, Dst: netip.MustParseAddr("255.255.255.255"), SrcPort: 68, DstPort: 67, Payload: 300})
	add("bcast/arp", BuildARP, FrameOpts{Dst: netip.MustParseAddr("198.18.0.254")})
	add("mcast/udp4", BuildUDP4, FrameOpts{DstMAC: net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}, Dst: group4, SrcPort: 9, DstPort: 9, Payload: 40, TTL: 255})
	add("mcast/udp6", BuildUDP6, FrameOpts{DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0xfb}, Dst: group6, SrcPort: 9, DstPort: 9, Payload: 40, TTL: 255})
	add("mcast/icmp6-allnodes", BuildICMP6, FrameOpts{DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, Dst: allNodes, TTL: 1, Payload: 8})
	add("mcast/icmp4", BuildICMP4, FrameOpts{DstMAC: net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, Dst: netip.MustParseAddr("224.0.0.1"), TTL: 1})
}

// addresses varies addresses, ports and sizes with a fixed seed.
func (c *corpus) addresses() {
	rng := rand.New(rand.NewPCG(0x7269_6e67, 0x7461_70)) // fixed: the corpus never changes
	for i := range 48 {
		b := l4Builders[i%len(l4Builders)]
		var src, dst netip.Addr
		if i%len(l4Builders) < 3 {
			src = netip.AddrFrom4([4]byte{198, 18 + byte(rng.IntN(2)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
			dst = netip.AddrFrom4([4]byte{198, 18 + byte(rng.IntN(2)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
		} else {
			var s, d [16]byte
			copy(s[:], []byte{0x20, 0x01, 0x0d, 0xb8})
			copy(d[:], []byte{0x20, 0x01, 0x0d, 0xb8})
			for j := 4; j < 16; j++ {
				s[j], d[j] = byte(rng.IntN(256)), byte(rng.IntN(256))
			}
			src, dst = netip.AddrFrom16(s), netip.AddrFrom16(d)
		}
		o := FrameOpts{
			SrcMAC:  net.HardwareAddr{0x02, 0, 0, 0, 1, byte(i)},
			DstMAC:  net.HardwareAddr{0x02, 0, 0, 0, 2, byte(i)},
			Src:     src,
			Dst:     dst,
			SrcPort: uint16(1 + rng.IntN(65535)),
			DstPort: uint16(1 + rng.IntN(65535)),
			Size:    b.min + rng.IntN(1514-b.min+1),
			TTL:     uint8(1 + rng.IntN(255)),
			Seed:    byte(i),
		}
		f, err := b.build(o)
		c.add(fmt.Sprintf("%s/rand%02d", b.name, i), f, err)
	}
}
