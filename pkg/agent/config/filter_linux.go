package config

import (
	"errors"
	"fmt"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
)

// checkFilter compiles expr with libpcap for Ethernet and translates it
// to eBPF, as a capture will, so that a mistake is found at load. The
// message says what to do.
func checkFilter(expr string) (msg string, err error) {
	prog, err := filter.Compile(expr, capture.LinkTypeEthernet)
	switch {
	case errors.Is(err, filter.ErrLiveOnly):
		return fmt.Sprintf("%v: select frames by their content, and by direction with direction: in or out", err), err
	case err != nil:
		return fmt.Sprintf("%v: fix the expression (tcpdump syntax, see pcap-filter(7)), or leave it empty to capture everything", err), err
	}
	if _, err := filter.Translate(prog, filter.DefaultOptions); err != nil {
		return fmt.Sprintf("filter %q cannot run in eBPF (%v): simplify the expression", expr, err), err
	}
	return "", nil
}
