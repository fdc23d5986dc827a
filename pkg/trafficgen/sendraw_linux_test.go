package trafficgen

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

func TestSendRawArrivesUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mtu    int
		frames func(p *testbed.Pair) [][]byte
	}{
		{"mixed", 1500, func(p *testbed.Pair) [][]byte {
			o := FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4, Payload: 100}
			return [][]byte{
				Must(BuildUDP4(o)), Must(BuildTCP4(FrameOpts{TCPFlags: TCPSyn, Size: 60})),
				Must(BuildICMP6(FrameOpts{HopByHop: true, Payload: 3})), Must(BuildARP(FrameOpts{Size: 60})),
				Must(BuildMTU(BuildUDP4, o, 1500)),
			}
		}},
		{"jumbo", 9000, func(p *testbed.Pair) [][]byte {
			return [][]byte{Must(BuildMTU(BuildUDP4, FrameOpts{}, 9000)), Must(BuildMTU(BuildTCP6, FrameOpts{}, 9000))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testbedtest.MustNewPair(t, testbed.PairConfig{MTU: tc.mtu})
			rx := newPacketReceiver(t, p.B)
			frames := tc.frames(p)
			if err := SendRaw(p.A, frames); err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for range frames {
				f := rx.read(t)
				if f == nil {
					break
				}
				got = append(got, f)
			}
			if diff := cmp.Diff(frames, got); diff != "" {
				t.Errorf("frames at B (-sent +received):\n%s", diff)
			}
		})
	}
}

func TestSendRawTooBig(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	err := SendRaw(p.A, [][]byte{Must(BuildMTU(BuildUDP4, FrameOpts{}, 1501))})
	if !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("sending MTU+15 bytes: %v, want EMSGSIZE", err)
	}
}

func TestSendRawCorpus(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	before, err := CountRx(p.B)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for _, f := range Corpus() {
		frames = append(frames, f.Data)
	}
	if err := SendRaw(p.A, frames); err != nil {
		t.Fatal(err)
	}
	want := before + uint64(len(frames))
	got := waitFor(t, want, 2*time.Second, func() (uint64, error) { return CountRx(p.B) })
	if got != want {
		t.Errorf("rx_packets at B went from %d to %d, want +%d", before, got, len(frames))
	}
}

// TestSendRawKernelAcceptsChecksums has B's UDP stack, which verifies the
// checksums of frames from a packet socket, deliver the datagrams; a frame
// with a broken checksum must not arrive.
func TestSendRawKernelAcceptsChecksums(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{IPv6: true})
	for _, tc := range []struct {
		name     string
		build    Builder
		src, dst netip.Addr
		opts     FrameOpts
	}{
		{"udp4", BuildUDP4, p.A.IPv4, p.B.IPv4, FrameOpts{}},
		{"udp4/options", BuildUDP4, p.A.IPv4, p.B.IPv4, FrameOpts{IPv4Options: []byte{1, 1, 1}}},
		{"udp6", BuildUDP6, p.A.IPv6, p.B.IPv6, FrameOpts{}},
		{"udp6/dstopts", BuildUDP6, p.A.IPv6, p.B.IPv6, FrameOpts{DestOpts: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := listenUDP(t, p.B, tc.dst)
			o := tc.opts
			o.SrcMAC, o.DstMAC, o.Src, o.Dst = p.A.MAC, p.B.MAC, tc.src, tc.dst
			o.SrcPort, o.DstPort = 4000, uint16(c.LocalAddr().(*net.UDPAddr).Port)
			var frames [][]byte
			var want [][]byte
			for i, size := range []int{0, 1, 2, 77, 1000} {
				o.Payload, o.Seed = size, byte(i)
				f := Must(tc.build(o))
				frames = append(frames, f)
				want = append(want, f[len(f)-size:])
			}
			bad := Must(tc.build(o))
			bad[len(bad)-1] ^= 0xff // breaks the UDP checksum
			frames = append(frames, bad)
			if err := SendRaw(p.A, frames); err != nil {
				t.Fatal(err)
			}
			got := readDatagrams(t, c, len(frames), 300*time.Millisecond)
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("datagrams at B (-want +got):\n%s", diff)
			}
		})
	}
}
