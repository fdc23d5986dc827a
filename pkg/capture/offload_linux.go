package capture

import (
	"fmt"

	"github.com/safchain/ethtool"
)

// xdpOffloads are the device features the kernel turns off when a generic
// XDP program is attached (dev_disable_lro, dev_disable_gro_hw in
// generic_xdp_install) and never turns back on. ringtap notes them before
// it attaches XDP and restores those that were on once its XDP program is
// gone, so that an interface is left as it was found.
var xdpOffloads = []string{"large-receive-offload", "rx-gro-hw"}

// readOffloads returns which of xdpOffloads are on. It must run in the
// interface's network namespace.
func readOffloads(ifname string) (map[string]bool, error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return nil, fmt.Errorf("open ethtool socket: %w", err)
	}
	defer e.Close()
	all, err := e.Features(ifname)
	if err != nil {
		return nil, fmt.Errorf("read features of %s: %w", ifname, err)
	}
	out := map[string]bool{}
	for _, f := range xdpOffloads {
		if on, ok := all[f]; ok {
			out[f] = on
		}
	}
	return out, nil
}

// toRestore is what was on before and is off now.
func toRestore(before, now map[string]bool) map[string]bool {
	out := map[string]bool{}
	for f, on := range before {
		if on && !now[f] {
			out[f] = true
		}
	}
	return out
}

// restoreOffloads turns back on what XDP turned off. It must run in the
// interface's network namespace.
func restoreOffloads(ifname string, before map[string]bool) error {
	if len(before) == 0 {
		return nil
	}
	now, err := readOffloads(ifname)
	if err != nil {
		return err
	}
	change := toRestore(before, now)
	if len(change) == 0 {
		return nil
	}
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	defer e.Close()
	if err := e.Change(ifname, change); err != nil {
		return fmt.Errorf("turn %v back on for %s after XDP: %w", change, ifname, err)
	}
	return nil
}
