package testbed_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"

	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// endState is what a test can see of one veth end from inside its namespace.
type endState struct {
	Up      bool
	MTU     int
	MAC     string
	Addrs   []string
	Neigh   []string
	PeerIdx bool // the link is a veth
}

func observe(t *testing.T, h testbed.Host) endState {
	t.Helper()
	nl, err := netlink.NewHandleAt(h.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(h.Link)
	if err != nil {
		t.Fatalf("%s not in %s: %v", h.Link, h.NSName, err)
	}
	if l.Attrs().Index != h.Index {
		t.Errorf("%s index %d, Host says %d", h.Link, l.Attrs().Index, h.Index)
	}
	s := endState{
		Up:      l.Attrs().OperState == netlink.OperUp,
		MTU:     l.Attrs().MTU,
		MAC:     l.Attrs().HardwareAddr.String(),
		PeerIdx: l.Type() == "veth",
	}
	addrs, err := nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		s.Addrs = append(s.Addrs, a.IPNet.String())
	}
	neigh, err := nl.NeighList(h.Index, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neigh {
		if n.State == netlink.NUD_PERMANENT {
			s.Neigh = append(s.Neigh, n.IP.String()+" "+n.HardwareAddr.String())
		}
	}
	return s
}

func TestNewPair(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  testbed.PairConfig
		mtu  int
	}{
		{"defaults", testbed.PairConfig{}, 1500},
		{"ipv6", testbed.PairConfig{IPv6: true}, 1500},
		{"jumbo", testbed.PairConfig{MTU: 9000, Name: "jumbo-long-prefix"}, 9000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testbedtest.MustNewPair(t, tc.cfg)
			for _, e := range []struct{ h, peer testbed.Host }{{p.A, p.B}, {p.B, p.A}} {
				h, peer := e.h, e.peer
				if len(h.Link) > 15 {
					t.Errorf("link name %q longer than 15", h.Link)
				}
				want := endState{
					Up: true, MTU: tc.mtu, MAC: h.MAC.String(), PeerIdx: true,
					Addrs: []string{netip.PrefixFrom(h.IPv4, 24).String()},
					Neigh: []string{peer.IPv4.String() + " " + peer.MAC.String()},
				}
				if tc.cfg.IPv6 {
					want.Addrs = append(want.Addrs, netip.PrefixFrom(h.IPv6, 64).String())
					want.Neigh = append(want.Neigh, peer.IPv6.String()+" "+peer.MAC.String())
				} else if h.IPv6.IsValid() {
					t.Errorf("IPv6 address %v without PairConfig.IPv6", h.IPv6)
				}
				if diff := cmp.Diff(want, observe(t, h)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", h.Link, diff)
				}
				if !netip.MustParsePrefix("198.18.0.0/15").Contains(h.IPv4) {
					t.Errorf("IPv4 %v outside 198.18.0.0/15", h.IPv4)
				}
				if _, err := netlink.LinkByName(h.Link); err == nil {
					t.Errorf("%s visible in the host namespace", h.Link)
				}
				var disabled string
				if err := h.Do(func() error {
					b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
					disabled = strings.TrimSpace(string(b))
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if want := map[bool]string{false: "1", true: "0"}[tc.cfg.IPv6]; disabled != want {
					t.Errorf("disable_ipv6 = %s in %s, want %s", disabled, h.NSName, want)
				}
			}
		})
	}
}

func TestUDPReachability(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  testbed.PairConfig
		addr func(testbed.Host) netip.Addr
	}{
		{"ipv4", testbed.PairConfig{}, func(h testbed.Host) netip.Addr { return h.IPv4 }},
		{"ipv6", testbed.PairConfig{IPv6: true}, func(h testbed.Host) netip.Addr { return h.IPv6 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testbedtest.MustNewPair(t, tc.cfg)
			var rx *net.UDPConn
			if err := p.B.Do(func() (err error) {
				rx, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.addr(p.B), 0)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			dst := rx.LocalAddr().(*net.UDPAddr)
			want := "hello from " + p.A.NSName
			var c *net.UDPConn
			if err := p.A.Do(func() (err error) {
				c, err = net.DialUDP("udp", nil, dst)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// UDP promises nothing: the first datagram waits for neighbour
			// resolution, which a loaded machine can make miss a deadline
			// (CI lost one over IPv6 in 2 s). Send until one arrives.
			stop := make(chan struct{})
			sent := make(chan error, 1)
			go func() {
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					if _, err := c.Write([]byte(want)); err != nil {
						sent <- err
						return
					}
					select {
					case <-stop:
						sent <- nil
						return
					case <-tick.C:
					}
				}
			}()
			rx.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 100)
			n, from, err := rx.ReadFromUDPAddrPort(buf)
			close(stop)
			if serr := <-sent; serr != nil {
				t.Fatalf("send: %v", serr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, string(buf[:n])); diff != "" {
				t.Errorf("datagram (-want +got):\n%s", diff)
			}
			if from.Addr() != tc.addr(p.A) {
				t.Errorf("from %v, want %v", from.Addr(), tc.addr(p.A))
			}
		})
	}
}

func TestDoEntersNamespace(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	outside, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	var inside bool
	if err := p.A.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		inside = cur.Equal(p.A.NS)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !inside {
		t.Error("fn did not run in A's namespace")
	}
	sentinel := errors.New("sentinel")
	if err := p.A.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		p.A.Do(func() error { panic("boom") })
	}()
}

func TestIPNetnsCompatible(t *testing.T) {
	p := testbedtest.MustNewPair(t, testbed.PairConfig{})
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	out, err := exec.Command("ip", "netns", "exec", p.A.NSName, "ip", "-o", "link", "show", p.A.Link).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if !strings.Contains(string(out), p.A.Link) {
		t.Errorf("ip netns exec output %q lacks %s", out, p.A.Link)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	p, err := testbed.NewPair(testbed.PairConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.A, p.B
	// A handle kept on A's namespace lets the test watch the veth die.
	keep, err := netns.GetFromPath(a.NSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, h := range []testbed.Host{a, b} {
		if _, err := os.Stat(h.NSPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Close: %v", h.NSPath, err)
		}
	}
	nl, err := netlink.NewHandleAt(keep)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := nl.LinkByName(a.Link)
		if err != nil {
			break // B's namespace died and took the veth with it
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 5s after Close", a.Link)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Other packages' tests may add links to the host namespace meanwhile:
	// look for this pair's names only.
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if n := l.Attrs().Name; n == a.Link || n == b.Link {
			t.Errorf("%s left in the host namespace", n)
		}
	}
	if err := a.Do(func() error { return nil }); err == nil {
		t.Error("Do after Close succeeded")
	}
}
