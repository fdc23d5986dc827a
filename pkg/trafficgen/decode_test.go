package trafficgen

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// summary is what the tests compare of a decoded frame.
type summary struct {
	Len              int
	Layers           []string
	SrcMAC, DstMAC   string
	VLANs            []uint16
	MPLS             []uint32
	Src, Dst         string
	TTL              uint8
	SrcPort, DstPort uint16
	TCPFlags         string
	Payload          int
	ARPOp            uint16
}

// decode parses b with gopacket, fails the test on a decoding error or an
// invalid checksum, and summarises it.
func decode(t *testing.T, b []byte) summary {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	// gopacket guesses application protocols from ports (DNS on 53 and
	// 5353...); the payloads are a byte pattern, so a failure above L4 is
	// not the frame's fault.
	if e := p.ErrorLayer(); e != nil && p.TransportLayer() == nil {
		t.Fatalf("decode: %v", e.Error())
	}
	s := summary{Len: len(b)}
	var net gopacket.NetworkLayer
	for _, l := range p.Layers() {
		s.Layers = append(s.Layers, l.LayerType().String())
		switch l := l.(type) {
		case *layers.Ethernet:
			s.SrcMAC, s.DstMAC = l.SrcMAC.String(), l.DstMAC.String()
		case *layers.Dot1Q:
			s.VLANs = append(s.VLANs, uint16(l.Priority)<<13|uint16(l.VLANIdentifier))
		case *layers.MPLS:
			s.MPLS = append(s.MPLS, l.Label)
		case *layers.IPv4:
			net, s.Src, s.Dst, s.TTL = l, l.SrcIP.String(), l.DstIP.String(), l.TTL
		case *layers.IPv6:
			net, s.Src, s.Dst, s.TTL = l, l.SrcIP.String(), l.DstIP.String(), l.HopLimit
		case *layers.UDP:
			s.SrcPort, s.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			l.SetNetworkLayerForChecksum(net)
		case *layers.TCP:
			s.SrcPort, s.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			s.TCPFlags = tcpFlags(l)
			l.SetNetworkLayerForChecksum(net)
		case *layers.ICMPv4:
			s.SrcPort, s.DstPort = l.Id, l.Seq
		case *layers.ICMPv6:
			l.SetNetworkLayerForChecksum(net)
		case *layers.ICMPv6Echo:
			s.SrcPort, s.DstPort = l.Identifier, l.SeqNumber
		case *layers.ARP:
			s.Src, s.Dst = netip.AddrFrom4([4]byte(l.SourceProtAddress)).String(), netip.AddrFrom4([4]byte(l.DstProtAddress)).String()
			s.ARPOp = l.Operation
		case *gopacket.Payload:
			s.Payload = len(l.Payload())
		}
	}
	err, bad := p.VerifyChecksums()
	if err != nil {
		t.Fatalf("verify checksums: %v", err)
	}
	for _, m := range bad {
		t.Errorf("bad %v checksum: %#04x, want %#04x", m.Layer.LayerType(), m.Actual, m.Correct)
	}
	return s
}

func tcpFlags(l *layers.TCP) string {
	var s string
	for _, f := range []struct {
		on   bool
		name string
	}{{l.FIN, "F"}, {l.SYN, "S"}, {l.RST, "R"}, {l.PSH, "P"}, {l.ACK, "A"}, {l.URG, "U"}, {l.ECE, "E"}, {l.CWR, "C"}} {
		if f.on {
			s += f.name
		}
	}
	return s
}

// nonZeroChecksum fails the test when a UDP checksum is 0 (which would
// mean "not computed" and pass any verification).
func nonZeroChecksum(t *testing.T, b []byte) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.Checksum == 0 {
		t.Errorf("udp checksum is 0")
	}
}

func (s summary) String() string { return fmt.Sprintf("%+v", s.Layers) }
