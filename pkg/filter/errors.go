package filter

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
)

// ErrLiveOnly is wrapped by errors for programs that read Linux socket
// metadata (ancillary data such as the packet type of inbound/outbound,
// the interface index or the VLAN tag of a live capture), which XDP and TC
// programs cannot provide.
var ErrLiveOnly = errors.New("the expression needs metadata that only a live Linux socket has (inbound, outbound, ifindex, ...), which XDP and TC programs cannot read")

// ErrUnsupported is wrapped by errors for valid classic instructions that
// Translate cannot express in eBPF with the same meaning.
var ErrUnsupported = errors.New("cannot translate")

// InsnError is a problem with one classic instruction.
type InsnError struct {
	PC     int
	Insn   bpf.RawInstruction
	Reason string
	Err    error // ErrUnsupported, ErrLiveOnly or nil (invalid program)
}

func (e *InsnError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("instruction %d (%s): %v: %s", e.PC, describe(e.Insn, e.PC), e.Err, e.Reason)
	}
	return fmt.Sprintf("instruction %d (%s): %s", e.PC, describe(e.Insn, e.PC), e.Reason)
}

func (e *InsnError) Unwrap() error { return e.Err }
