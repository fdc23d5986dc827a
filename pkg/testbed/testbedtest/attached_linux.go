package testbedtest

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// MustAttached lists the BPF programs attached to h's link: XDP, TCX in
// both directions, and clsact filters, as "xdp prog ID", "tcx ingress prog
// ID", "tc ingress filter bpf" and the like.
func MustAttached(t testing.TB, h testbed.Host) []string {
	t.Helper()
	var out []string
	err := h.Do(func() error {
		l, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return fmt.Errorf("find %s: %w", h.Link, err)
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			out = append(out, fmt.Sprintf("xdp prog %d", x.ProgId))
		}
		for _, at := range []struct {
			name string
			typ  ebpf.AttachType
		}{{"ingress", ebpf.AttachTCXIngress}, {"egress", ebpf.AttachTCXEgress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: h.Index, Attach: at.typ})
			if err != nil {
				continue // kernel without TCX
			}
			for _, p := range res.Programs {
				out = append(out, fmt.Sprintf("tcx %s prog %d", at.name, p.ID))
			}
		}
		for _, parent := range []struct {
			name   string
			handle uint32
		}{{"ingress", netlink.HANDLE_MIN_INGRESS}, {"egress", netlink.HANDLE_MIN_EGRESS}} {
			fs, err := netlink.FilterList(l, parent.handle)
			if err != nil {
				continue // no clsact qdisc
			}
			for _, f := range fs {
				out = append(out, fmt.Sprintf("tc %s filter %s", parent.name, f.Type()))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list attached programs: %v", err)
	}
	return out
}
