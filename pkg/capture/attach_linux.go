package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hookLink is an attached program that can be swapped for another
// atomically (frames see the old program or the new one, never none).
type hookLink interface {
	Update(prog *ebpf.Program) error
	Close() error
}

// ErrXDPBusy: the interface already has an XDP program that ringtap did
// not attach. ringtap never replaces it.
var ErrXDPBusy = errors.New("another XDP program is attached")

// foreignXDP returns the id of an XDP program attached to ifindex, or 0.
// It must run in the interface's network namespace.
func foreignXDP(ifindex int) (uint32, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return 0, fmt.Errorf("look up interface %d: %w", ifindex, err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		return x.ProgId, nil
	}
	return 0, nil
}

// attachXDP attaches in native mode, falling back to generic (skb) mode with
// a warning when the driver has no native XDP (XDPAuto), or in the mode
// asked for. It must run in the interface's network namespace.
func attachXDP(prog *ebpf.Program, ifname string, ifindex int, mode XDPMode) (hookLink, string, error) {
	if id, err := foreignXDP(ifindex); err != nil {
		return nil, "", err
	} else if id != 0 {
		return nil, "", fmt.Errorf("%s: %w (id %d): ringtap never replaces it; use hook tc", ifname, ErrXDPBusy, id)
	}
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
// without TCX (or when forced). It must run in the interface's namespace.
func attachTC(prog *ebpf.Program, cl *clsact, ifname string, ifindex int, ingress, forceClsact bool) (hookLink, string, error) {
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
	f, err := cl.add(prog, ingress)
	if err != nil {
		return nil, "", err
	}
	return f, "tc-clsact", nil
}

// clsactName marks ringtap's clsact filters with the owner's pid, so that a
// later process can tell filters left by a killed one (clsact filters,
// unlike bpf_links, outlive their process) from a live one's.
const clsactName = "ringtap:"

// clsact manages ringtap's filters on one interface's clsact qdisc: a
// priority of their own (the lowest free one from 0xc000 down, so another
// tool's filters keep theirs), stale filters of dead ringtap processes
// removed, and the qdisc removed at the end if ringtap added it and
// nothing else uses it.
type clsact struct {
	ifname  string
	ifindex int
	netns   string
	created bool // the qdisc was added by us
	filters int  // ours, attached now
}

func (c *clsact) handle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return h, nil
}

// ensureQdisc adds the clsact qdisc unless one is there, and removes the
// filters of ringtap processes that are gone.
func (c *clsact) ensureQdisc(h *netlink.Handle) error {
	qs, err := h.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: c.ifindex}})
	if err != nil {
		return fmt.Errorf("list qdiscs of %s: %w", c.ifname, err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			c.removeStale(h)
			return nil
		}
	}
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: c.ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(qdisc); err != nil {
		return fmt.Errorf("add clsact qdisc to %s: %w", c.ifname, err)
	}
	c.created = true
	return nil
}

// removeStale deletes ringtap filters whose process is gone (and those of
// versions that did not record a pid).
func (c *clsact) removeStale(h *netlink.Handle) {
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: c.ifindex}}, parent)
		if err != nil {
			continue
		}
		for _, f := range fs {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || !staleName(bf.Name) {
				continue
			}
			if err := h.FilterDel(bf); err == nil {
				slog.Info("removed a clsact filter left by a ringtap process that is gone", "interface", c.ifname, "filter", bf.Name)
			}
		}
	}
}

func staleName(name string) bool {
	if name == "ringtap" {
		return true
	}
	pid, ok := strings.CutPrefix(name, clsactName)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n == os.Getpid() {
		return false
	}
	return unix.Kill(n, 0) == unix.ESRCH
}

// add attaches prog as a direct-action filter at a free priority.
func (c *clsact) add(prog *ebpf.Program, ingress bool) (*clsactFilter, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	if err := c.ensureQdisc(h); err != nil {
		h.Close()
		return nil, err
	}
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if !ingress {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	used := map[uint16]bool{}
	fs, err := h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: c.ifindex}}, parent)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("list clsact filters of %s: %w", c.ifname, err)
	}
	for _, f := range fs {
		used[f.Attrs().Priority] = true
	}
	prio := uint16(0xc000)
	for used[prio] {
		prio--
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: c.ifindex, Parent: parent, Handle: 1, Priority: prio, Protocol: unix.ETH_P_ALL,
		},
		Fd: prog.FD(), Name: clsactName + strconv.Itoa(os.Getpid()), DirectAction: true,
	}
	if err := h.FilterAdd(f); err != nil {
		h.Close()
		return nil, fmt.Errorf("add clsact filter to %s: %w", c.ifname, err)
	}
	c.filters++
	return &clsactFilter{owner: c, handle: h, filter: f}, nil
}

// release removes the qdisc if we added it and no filter is left on it.
func (c *clsact) release() error {
	if !c.created || c.filters > 0 {
		return nil
	}
	h, err := c.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: c.ifindex}}, parent)
		if err != nil {
			if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil // the device (or the qdisc) is gone
			}
			return fmt.Errorf("list clsact filters of %s: %w", c.ifname, err)
		}
		if len(fs) > 0 {
			return nil // someone else's
		}
	}
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: c.ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("remove the clsact qdisc ringtap added to %s: %w", c.ifname, err)
	}
	c.created = false
	return nil
}

// clsactFilter is a direct-action bpf filter on a clsact qdisc. Unlike a
// bpf_link it outlives the process, so Close must remove it. Update
// replaces its program in place (cls_bpf swaps it under RCU).
type clsactFilter struct {
	owner  *clsact
	handle *netlink.Handle
	filter *netlink.BpfFilter
	closed bool
}

func (c *clsactFilter) Update(prog *ebpf.Program) error {
	f := *c.filter
	f.Fd = prog.FD()
	if err := c.handle.FilterReplace(&f); err != nil {
		return fmt.Errorf("replace clsact filter program on %s: %w", c.owner.ifname, err)
	}
	c.filter = &f
	return nil
}

func (c *clsactFilter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	defer c.handle.Close()
	c.owner.filters--
	if err := c.handle.FilterDel(c.filter); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("remove clsact filter from %s: %w", c.owner.ifname, err)
	}
	return nil
}
