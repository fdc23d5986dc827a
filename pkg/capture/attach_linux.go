package capture

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attachXDP attaches in native mode, falling back to generic (skb) mode with
// a warning when the driver has no native XDP (XDPAuto), or in the mode
// asked for. It must run in the interface's network namespace.
func attachXDP(prog *ebpf.Program, ifname string, ifindex int, mode XDPMode) (io.Closer, string, error) {
	var nerr error
	if mode != XDPGeneric {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err == nil {
			return l, "xdp", nil
		}
		if mode == XDPNative {
			return nil, "", fmt.Errorf("attach native xdp to %s: %w", ifname, err)
		}
		nerr = err
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	if err != nil {
		return nil, "", fmt.Errorf("attach xdp to %s: %w", ifname, errors.Join(nerr, err))
	}
	if mode == XDPGeneric {
		return l, "xdp-generic", nil
	}
	slog.Warn("driver has no native XDP, using generic XDP (slower)", "interface", ifname, "native_error", nerr)
	return l, "xdp-generic", nil
}

// attachTC attaches with TCX, or with a netlink clsact filter on kernels
// without TCX (or when forced).
func attachTC(prog *ebpf.Program, ifname string, ifindex int, ingress, forceClsact bool) (io.Closer, string, error) {
	if !forceClsact {
		at := ebpf.AttachTCXIngress
		if !ingress {
			at = ebpf.AttachTCXEgress
		}
		l, err := link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifindex, Attach: at})
		if err == nil {
			return l, "tcx", nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) && !errors.Is(err, unix.EINVAL) {
			return nil, "", fmt.Errorf("attach tcx to %s: %w", ifname, err)
		}
		slog.Warn("kernel has no TCX, using a clsact filter", "interface", ifname, "error", err)
	}
	c, err := attachClsact(prog, ifname, ifindex, ingress)
	if err != nil {
		return nil, "", err
	}
	return c, "tc-clsact", nil
}

// clsactFilter is a direct-action bpf filter on a clsact qdisc. Unlike a
// bpf_link it outlives the process, so Close must remove it.
type clsactFilter struct {
	handle *netlink.Handle
	filter *netlink.BpfFilter
}

func attachClsact(prog *ebpf.Program, ifname string, ifindex int, ingress bool) (io.Closer, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscReplace(qdisc); err != nil {
		h.Close()
		return nil, fmt.Errorf("add clsact qdisc to %s: %w", ifname, err)
	}
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if !ingress {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex, Parent: parent, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL,
		},
		Fd: prog.FD(), Name: "ringtap", DirectAction: true,
	}
	if err := h.FilterAdd(f); err != nil {
		h.Close()
		return nil, fmt.Errorf("add clsact filter to %s: %w", ifname, err)
	}
	return &clsactFilter{handle: h, filter: f}, nil
}

func (c *clsactFilter) Close() error {
	defer c.handle.Close()
	if err := c.handle.FilterDel(c.filter); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove clsact filter: %w", err)
	}
	return nil
}
