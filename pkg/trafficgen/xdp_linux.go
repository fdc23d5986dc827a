package trafficgen

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// XDP verdicts.
const (
	xdpDrop int32 = 1
	xdpPass int32 = 2
	xdpTX   int32 = 3
)

// XDPCounter is a counting XDP program attached to a link. It implements
// io.Closer.
type XDPCounter struct {
	mu      sync.Mutex
	link    link.Link
	prog    *ebpf.Program
	counter *ebpf.Map
}

// AttachPass attaches to h's veth end an XDP program that counts frames and
// passes them to the stack. A veth needs an XDP program for frames sent
// with LiveSender from its peer to arrive. Close detaches it.
func AttachPass(h testbed.Host) (*XDPCounter, error) {
	return attachCounter(h, "rt_tg_pass", xdpPass)
}

// AttachDrop attaches to h's veth end an XDP program that counts frames and
// drops them. Close detaches it.
func AttachDrop(h testbed.Host) (*XDPCounter, error) {
	return attachCounter(h, "rt_tg_drop", xdpDrop)
}

func attachCounter(h testbed.Host, name string, verdict int32) (*XDPCounter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("create counter map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    name,
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			// key = 0; v = lookup(map, &key); if v { *v += 1 }; return verdict
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, verdict).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	var l link.Link
	// The interface index is resolved in the calling thread's namespace.
	err = h.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: h.Index})
		return err
	})
	if err != nil {
		prog.Close()
		m.Close()
		return nil, fmt.Errorf("attach xdp to %s: %w", h.Link, err)
	}
	return &XDPCounter{link: l, prog: prog, counter: m}, nil
}

// Packets returns how many frames the program has seen, summed over CPUs.
func (c *XDPCounter) Packets() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counter == nil {
		return 0, errors.New("xdp counter closed")
	}
	var perCPU []uint64
	if err := c.counter.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read xdp counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Close detaches the program and releases it. It is idempotent. Do not
// call it while a LiveSender runs towards this link.
func (c *XDPCounter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link == nil {
		return nil
	}
	err := c.link.Close()
	c.prog.Close()
	c.counter.Close()
	c.link, c.prog, c.counter = nil, nil, nil
	if err != nil {
		return fmt.Errorf("detach xdp: %w", err)
	}
	return nil
}
