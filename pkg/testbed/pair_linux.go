package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// upTimeout bounds the wait for both veth ends to report operstate up (the
// kernel attaches their qdisc asynchronously; frames sent before that are
// dropped).
const upTimeout = 5 * time.Second

// NewPair creates two network namespaces joined by a veth pair, configured
// as the package documentation says. Close the Pair to remove it all.
func NewPair(cfg PairConfig) (*Pair, error) {
	cfg = cfg.withDefaults()
	if cfg.MTU < 68 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("mtu %d out of range 68..65535", cfg.MTU)
	}
	p := &Pair{A: Host{NS: netns.None()}, B: Host{NS: netns.None()}}
	if err := p.build(cfg); err != nil {
		if cerr := p.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
		return nil, err
	}
	return p, nil
}

func (p *Pair) build(cfg PairConfig) error {
	var n naming
	for try := 0; ; try++ {
		n = newNaming(cfg.Name)
		var err error
		p.A.NS, p.A.NSPath, err = createNamedNS(n.a)
		if errors.Is(err, os.ErrExist) && try < 5 {
			continue
		}
		if err != nil {
			return err
		}
		p.A.NSName = n.a
		p.B.NS, p.B.NSPath, err = createNamedNS(n.b)
		if err != nil {
			return err
		}
		p.B.NSName = n.b
		break
	}
	p.A.Link, p.A.MAC = n.a, n.macA
	p.B.Link, p.B.MAC = n.b, n.macB
	p.A.IPv4 = netip.AddrFrom4([4]byte{198, 18, n.subnet, 1})
	p.B.IPv4 = netip.AddrFrom4([4]byte{198, 18, n.subnet, 2})
	if cfg.IPv6 {
		a6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, n.subnet}
		b6 := a6
		a6[15], b6[15] = 1, 2
		p.A.IPv6, p.B.IPv6 = netip.AddrFrom16(a6), netip.AddrFrom16(b6)
	}

	for _, h := range []Host{p.A, p.B} {
		if err := h.Do(func() error { return prepareNS(cfg.IPv6) }); err != nil {
			return fmt.Errorf("prepare namespace %s: %w", h.NSName, err)
		}
	}

	ha, err := netlink.NewHandleAt(p.A.NS)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", p.A.NSName, err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(p.B.NS)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", p.B.NSName, err)
	}
	defer hb.Close()

	la := netlink.NewLinkAttrs()
	la.Name = p.A.Link
	la.MTU = cfg.MTU
	la.HardwareAddr = p.A.MAC
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         p.B.Link,
		PeerHardwareAddr: p.B.MAC,
		PeerMTU:          uint32(cfg.MTU),
		PeerNamespace:    netlink.NsFd(int(p.B.NS)),
	}
	if err := ha.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", p.A.Link, p.B.Link, err)
	}

	for _, e := range []struct {
		h    *Host
		nl   *netlink.Handle
		peer Host
	}{{h: &p.A, nl: ha, peer: p.B}, {h: &p.B, nl: hb, peer: p.A}} {
		if err := configureEnd(e.nl, e.h, e.peer, cfg.IPv6); err != nil {
			return fmt.Errorf("configure %s: %w", e.h.Link, err)
		}
	}
	if err := waitUp(ha, p.A); err != nil {
		return err
	}
	return waitUp(hb, p.B)
}

// prepareNS runs inside a new namespace, before the veth exists, so the
// "default" sysctls apply to it.
func prepareNS(ipv6 bool) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	settings := [][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	}
	if ipv6 {
		settings = [][2]string{
			{"net.ipv6.conf.all.accept_dad", "0"},
			{"net.ipv6.conf.default.accept_dad", "0"},
			{"net.ipv6.conf.default.router_solicitations", "0"},
		}
	}
	for _, kv := range settings {
		if err := sysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func configureEnd(nl *netlink.Handle, h *Host, peer Host, ipv6 bool) error {
	link, err := nl.LinkByName(h.Link)
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	h.Index = link.Attrs().Index
	addrs := []netip.Prefix{netip.PrefixFrom(h.IPv4, 24)}
	if ipv6 {
		addrs = append(addrs, netip.PrefixFrom(h.IPv6, 64))
	}
	for _, a := range addrs {
		nla := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		if a.Addr().Is6() {
			nla.Flags = unix.IFA_F_NODAD
		}
		if err := nl.AddrAdd(link, nla); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	neigh := []netip.Addr{peer.IPv4}
	if ipv6 {
		neigh = append(neigh, peer.IPv6)
	}
	for _, ip := range neigh {
		family := netlink.FAMILY_V4
		if ip.Is6() {
			family = netlink.FAMILY_V6
		}
		if err := nl.NeighAdd(&netlink.Neigh{
			LinkIndex:    h.Index,
			Family:       family,
			State:        netlink.NUD_PERMANENT,
			IP:           ip.AsSlice(),
			HardwareAddr: peer.MAC,
		}); err != nil {
			return fmt.Errorf("add neighbour %s: %w", ip, err)
		}
	}
	if err := nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

func waitUp(nl *netlink.Handle, h Host) error {
	deadline := time.Now().Add(upTimeout)
	for {
		link, err := nl.LinkByIndex(h.Index)
		if err != nil {
			return fmt.Errorf("find %s: %w", h.Link, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after %v: operstate %s", h.Link, upTimeout, link.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close deletes both namespaces, which destroys the veth pair. It is
// idempotent: later calls return the first call's result.
func (p *Pair) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.err
	}
	p.closed = true
	var errs []error
	for _, h := range []*Host{&p.A, &p.B} {
		if h.NS.IsOpen() {
			if err := h.NS.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s handle: %w", h.NSName, err))
			}
			h.NS = netns.None()
		}
		if h.NSPath != "" {
			if err := deleteNamedNS(h.NSPath); err != nil {
				errs = append(errs, err)
			}
		}
	}
	p.err = errors.Join(errs...)
	return p.err
}
