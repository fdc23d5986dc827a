package trafficgen

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestCorpusDeterministic(t *testing.T) {
	if diff := cmp.Diff(Corpus(), Corpus()); diff != "" {
		t.Errorf("two calls differ (-first +second):\n%s", diff)
	}
}

var (
	testNet4 = netip.MustParsePrefix("198.18.0.0/15")
	testNet6 = netip.MustParsePrefix("2001:db8::/32")
	mcast4   = netip.MustParsePrefix("224.0.0.0/4")
	mcast6   = netip.MustParsePrefix("ff00::/8")
)

func allowedAddr(a netip.Addr) bool {
	return testNet4.Contains(a) || testNet6.Contains(a) || mcast4.Contains(a) || mcast6.Contains(a) ||
		a == netip.MustParseAddr("255.255.255.255")
}

func TestCorpusFrames(t *testing.T) {
	frames := Corpus()
	if n := len(frames); n < 200 || n > 500 {
		t.Errorf("%d frames, want a few hundred", n)
	}
	seen := map[string]bool{}
	// kinds records which required kinds of frame the corpus has.
	kinds := map[string]bool{}
	for _, f := range frames {
		if seen[f.Name] {
			t.Errorf("duplicate name %q", f.Name)
		}
		seen[f.Name] = true
		t.Run(f.Name, func(t *testing.T) {
			if n := len(f.Data); n < 60 || n > 1518 {
				t.Errorf("%d bytes, want 60..1518", n)
			}
			nonZeroChecksum(t, f.Data)
			s := decode(t, f.Data)
			p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
			eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if eth.SrcMAC[0]&0x03 != 0x02 {
				t.Errorf("source MAC %v is not locally administered unicast", eth.SrcMAC)
			}
			for _, a := range []string{s.Src, s.Dst} {
				if addr, err := netip.ParseAddr(a); err == nil && !allowedAddr(addr) {
					t.Errorf("address %v outside the test ranges", addr)
				}
			}
			if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
				if len(ip.Contents)+len(ip.Payload) > 1500 {
					t.Errorf("IPv4 packet of %d bytes exceeds MTU 1500", len(ip.Contents)+len(ip.Payload))
				}
				if ip.IHL > 5 {
					kinds["ipv4 options"] = true
				}
				if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
					kinds["ipv4 fragment"] = true
				}
			}
			for _, l := range s.Layers {
				kinds[l] = true
			}
			if len(s.VLANs) >= 2 {
				kinds["qinq"] = true
			}
			switch {
			case eth.DstMAC.String() == "ff:ff:ff:ff:ff:ff":
				kinds["broadcast"] = true
			case eth.DstMAC[0]&1 == 1:
				kinds["multicast"] = true
			}
			kinds[map[bool]string{true: "size 60", false: ""}[len(f.Data) == 60]] = true
			kinds[map[bool]string{true: "size 1514", false: ""}[len(f.Data) == 1514]] = true
		})
	}
	for _, k := range []string{
		"TCP", "UDP", "ICMPv4", "ICMPv6", "ARP", "Dot1Q", "qinq", "MPLS", "LLC", "SNAP",
		"IPv6HopByHop", "IPv6Fragment", "IPv6Destination", "ipv4 options", "ipv4 fragment",
		"broadcast", "multicast", "size 60", "size 1514",
	} {
		if !kinds[k] {
			t.Errorf("corpus lacks %s frames", k)
		}
	}
}

// TestCorpusTshark has Wireshark's dissectors check every checksum and
// look for malformed frames, as a second opinion on gopacket's.
func TestCorpusTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "corpus.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	frames := Corpus()
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: len(fr.Data), Length: len(fr.Data)}
		if err := w.WritePacket(ci, fr.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-r", path,
		"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-o", "tcp.analyze_sequence_numbers:FALSE",
		"-Y", `_ws.malformed || _ws.expert.group == "Checksum" || _ws.expert.severity >= "Error"`,
		"-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message")
	// A fresh profile: the user's preferences must not change the verdict.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// tshark exits 0 whatever the frames hold: this is tshark failing.
		t.Skipf("tshark does not run here: %v: %s", err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		num, msg, _ := strings.Cut(line, "\t")
		var n int
		for _, c := range num {
			n = n*10 + int(c-'0')
		}
		name := "?"
		if n >= 1 && n <= len(frames) {
			name = frames[n-1].Name
		}
		t.Errorf("tshark on %s: %s", name, msg)
	}
}

// TestVerifierCatchesCorruption makes sure decode's checksum check is not
// vacuous: a flipped bit must be reported.
func TestVerifierCatchesCorruption(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build Builder
	}{{"udp4", BuildUDP4}, {"tcp4", BuildTCP4}, {"icmp4", BuildICMP4}, {"udp6", BuildUDP6}, {"tcp6", BuildTCP6}, {"icmp6", BuildICMP6}} {
		t.Run(tc.name, func(t *testing.T) {
			b := Must(tc.build(FrameOpts{Payload: 9}))
			b[len(b)-1] ^= 0x10
			p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
			for _, l := range p.Layers() {
				if c, ok := l.(interface {
					SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
				}); ok {
					c.SetNetworkLayerForChecksum(p.NetworkLayer())
				}
			}
			err, bad := p.VerifyChecksums()
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) != 1 {
				t.Errorf("%d checksum mismatches after corruption, want 1", len(bad))
			}
		})
	}
}
