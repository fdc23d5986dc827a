package trafficgen

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBuilders(t *testing.T) {
	def4 := summary{SrcMAC: "02:00:00:00:00:01", DstMAC: "02:00:00:00:00:02", Src: "198.18.0.1", Dst: "198.18.0.2", TTL: 64, SrcPort: 1024, DstPort: 9}
	def6 := def4
	def6.Src, def6.Dst = "2001:db8::1", "2001:db8::2"
	with := func(s summary, f func(*summary)) summary { f(&s); return s }
	for _, tc := range []struct {
		name  string
		build Builder
		opts  FrameOpts
		want  summary
	}{
		{"udp4", BuildUDP4, FrameOpts{Payload: 5}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.Payload = 14+20+8+5, []string{"Ethernet", "IPv4", "UDP", "Payload"}, 5
		})},
		{"udp4/size", BuildUDP4, FrameOpts{Size: 60, SrcPort: 4000, DstPort: 5000, TTL: 7}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.Payload = 60, []string{"Ethernet", "IPv4", "UDP", "Payload"}, 60-42
			s.SrcPort, s.DstPort, s.TTL = 4000, 5000, 7
		})},
		{"tcp4/syn", BuildTCP4, FrameOpts{TCPFlags: TCPSyn}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.TCPFlags = 54, []string{"Ethernet", "IPv4", "TCP"}, "S"
		})},
		{"tcp4/options", BuildTCP4, FrameOpts{TCPFlags: TCPPsh | TCPAck, IPv4Options: []byte{0x94, 4, 0}, Payload: 3}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.TCPFlags, s.Payload = 14+24+20+3, []string{"Ethernet", "IPv4", "TCP", "Payload"}, "PA", 3
		})},
		{"icmp4", BuildICMP4, FrameOpts{Payload: 56, SrcPort: 77, DstPort: 3}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.Payload, s.SrcPort, s.DstPort = 14+20+8+56, []string{"Ethernet", "IPv4", "ICMPv4", "Payload"}, 56, 77, 3
		})},
		{"udp4/vlan", BuildUDP4, FrameOpts{VLANs: []uint16{3<<13 | 100}, Size: 100}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.VLANs, s.Payload = 100, []string{"Ethernet", "Dot1Q", "IPv4", "UDP", "Payload"}, []uint16{3<<13 | 100}, 100-46
		})},
		{"udp4/qinq", BuildUDP4, FrameOpts{VLANs: []uint16{100, 200}, Size: 100}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.VLANs, s.Payload = 100, []string{"Ethernet", "Dot1Q", "Dot1Q", "IPv4", "UDP", "Payload"}, []uint16{100, 200}, 100-50
		})},
		{"udp4/mpls", BuildUDP4, FrameOpts{MPLS: []uint32{16, 1 << 19}, Payload: 1}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.MPLS, s.Payload = 14+8+20+8+1, []string{"Ethernet", "MPLS", "MPLS", "IPv4", "UDP", "Payload"}, []uint32{16, 1 << 19}, 1
		})},
		{"udp6", BuildUDP6, FrameOpts{Payload: 7}, with(def6, func(s *summary) {
			s.Len, s.Layers, s.Payload = 14+40+8+7, []string{"Ethernet", "IPv6", "UDP", "Payload"}, 7
		})},
		{"tcp6/size", BuildTCP6, FrameOpts{Size: 1514, TCPFlags: TCPFin | TCPAck}, with(def6, func(s *summary) {
			s.Len, s.Layers, s.TCPFlags, s.Payload = 1514, []string{"Ethernet", "IPv6", "TCP", "Payload"}, "FA", 1514-74
		})},
		{"icmp6", BuildICMP6, FrameOpts{Payload: 4, SrcPort: 9, DstPort: 10}, with(def6, func(s *summary) {
			s.Len, s.Layers, s.Payload, s.SrcPort, s.DstPort = 14+40+8+4, []string{"Ethernet", "IPv6", "ICMPv6", "ICMPv6Echo", "Payload"}, 4, 9, 10
		})},
		{"udp6/hbh+dstopts", BuildUDP6, FrameOpts{HopByHop: true, DestOpts: true, Payload: 2}, with(def6, func(s *summary) {
			s.Len, s.Layers, s.Payload = 14+40+16+8+2, []string{"Ethernet", "IPv6", "IPv6HopByHop", "IPv6Destination", "UDP", "Payload"}, 2
		})},
		{"tcp6/hbh+frag", BuildTCP6, FrameOpts{HopByHop: true, Fragment: &Fragment{ID: 1, Offset: 8}, Payload: 16}, with(def6, func(s *summary) {
			s.Len, s.Layers, s.SrcPort, s.DstPort = 14+40+16+16, []string{"Ethernet", "IPv6", "IPv6HopByHop", "IPv6Fragment", "Fragment"}, 0, 0
		})},
		{"udp4/frag", BuildUDP4, FrameOpts{Fragment: &Fragment{ID: 1, More: true}, Payload: 16}, with(def4, func(s *summary) {
			s.Len, s.Layers, s.SrcPort, s.DstPort = 14+20+8+16, []string{"Ethernet", "IPv4", "Fragment"}, 0, 0
		})},
		{"udp6/mpls+vlan", BuildUDP6, FrameOpts{VLANs: []uint16{5}, MPLS: []uint32{20}}, with(def6, func(s *summary) {
			s.Len, s.Layers, s.VLANs, s.MPLS = 14+4+4+40+8, []string{"Ethernet", "Dot1Q", "MPLS", "IPv6", "UDP"}, []uint16{5}, []uint32{20}
		})},
		{"arp/request", BuildARP, FrameOpts{Size: 60}, summary{
			Len: 60, Layers: []string{"Ethernet", "ARP", "Payload"}, SrcMAC: "02:00:00:00:00:01", DstMAC: "ff:ff:ff:ff:ff:ff",
			Src: "198.18.0.1", Dst: "198.18.0.2", ARPOp: 1, Payload: 60 - 42,
		}},
		{"arp/reply", BuildARP, FrameOpts{ARPReply: true, VLANs: []uint16{7}}, summary{
			Len: 46, Layers: []string{"Ethernet", "Dot1Q", "ARP"}, SrcMAC: "02:00:00:00:00:01", DstMAC: "02:00:00:00:00:02",
			VLANs: []uint16{7}, Src: "198.18.0.1", Dst: "198.18.0.2", ARPOp: 2,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.build(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			nonZeroChecksum(t, b)
			if diff := cmp.Diff(tc.want, decode(t, b), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decoded frame (-want +got):\n%s", diff)
			}
			again, _ := tc.build(tc.opts)
			if diff := cmp.Diff(b, again); diff != "" {
				t.Errorf("not deterministic (-first +second):\n%s", diff)
			}
		})
	}
}

func TestQinQTPIDs(t *testing.T) {
	b := Must(BuildUDP4(FrameOpts{VLANs: []uint16{1, 2, 3}}))
	got := [][2]byte{{b[12], b[13]}, {b[16], b[17]}, {b[20], b[21]}, {b[24], b[25]}}
	want := [][2]byte{{0x88, 0xa8}, {0x88, 0xa8}, {0x81, 0x00}, {0x08, 0x00}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TPIDs and EtherType (-want +got):\n%s", diff)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build Builder
		opts  FrameOpts
	}{
		{"v6 address in v4", BuildUDP4, FrameOpts{Src: netip.MustParseAddr("2001:db8::1")}},
		{"v4 address in v6", BuildTCP6, FrameOpts{Dst: netip.MustParseAddr("198.18.0.1")}},
		{"size too small", BuildTCP6, FrameOpts{Size: 73}},
		{"payload and size", BuildUDP4, FrameOpts{Size: 100, Payload: 10}},
		{"negative payload", BuildUDP4, FrameOpts{Payload: -1}},
		{"short mac", BuildICMP4, FrameOpts{SrcMAC: net.HardwareAddr{1, 2}}},
		{"odd fragment offset", BuildUDP4, FrameOpts{Fragment: &Fragment{Offset: 3}}},
		{"ipv4 packet too long", BuildUDP4, FrameOpts{Payload: 65536}},
		{"too many options", BuildUDP4, FrameOpts{IPv4Options: make([]byte, 41)}},
		{"ipv4 options on ipv6", BuildUDP6, FrameOpts{IPv4Options: []byte{1}}},
		{"mpls label too big", BuildUDP4, FrameOpts{MPLS: []uint32{1 << 20}}},
		{"arp too small", BuildARP, FrameOpts{Size: 41}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tc.build(tc.opts); err == nil {
				t.Errorf("built %d bytes, want an error", len(b))
			}
		})
	}
}

func TestBuildMTU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		build   Builder
		opts    FrameOpts
		mtu     int
		wantLen int
	}{
		{"udp4/1500", BuildUDP4, FrameOpts{}, 1500, 1514},
		{"udp4/9000", BuildUDP4, FrameOpts{}, 9000, 9014},
		{"tcp6/9000/vlan", BuildTCP6, FrameOpts{VLANs: []uint16{10}, TCPFlags: TCPAck}, 9000, 9018},
		{"icmp4/65535", BuildICMP4, FrameOpts{}, 65535, 65549},
		{"udp6/mpls", BuildUDP6, FrameOpts{MPLS: []uint32{1}}, 4000, 4014},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := BuildMTU(tc.build, tc.opts, tc.mtu)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.wantLen {
				t.Errorf("len %d, want %d", len(b), tc.wantLen)
			}
			decode(t, b)
		})
	}
}
