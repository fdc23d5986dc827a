package capture

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf/asm"
)

// Hook selects where the capture program runs.
type Hook int

const (
	// HookAuto uses XDP for ingress-only captures and TC otherwise.
	HookAuto Hook = iota
	// HookXDP captures ingress frames at XDP (native, generic as fallback).
	HookXDP
	// HookTC captures at TCX (clsact on kernels before 6.6), both directions.
	HookTC
)

// ParseHook parses "auto", "xdp" or "tc".
func ParseHook(s string) (Hook, error) {
	switch s {
	case "auto", "":
		return HookAuto, nil
	case "xdp":
		return HookXDP, nil
	case "tc":
		return HookTC, nil
	}
	return 0, fmt.Errorf("unknown hook %q: use auto, xdp or tc", s)
}

func (h Hook) String() string {
	switch h {
	case HookXDP:
		return "xdp"
	case HookTC:
		return "tc"
	}
	return "auto"
}

// XDPMode selects how the XDP program is attached.
type XDPMode int

const (
	// XDPAuto attaches in native (driver) mode, generic as fallback.
	XDPAuto XDPMode = iota
	// XDPNative attaches in native mode only.
	XDPNative
	// XDPGeneric attaches in generic (skb) mode, which every interface
	// has and which costs an skb per frame.
	XDPGeneric
)

// ParseXDPMode parses "auto", "native" or "generic".
func ParseXDPMode(s string) (XDPMode, error) {
	switch s {
	case "auto", "":
		return XDPAuto, nil
	case "native":
		return XDPNative, nil
	case "generic":
		return XDPGeneric, nil
	}
	return 0, fmt.Errorf("unknown xdp mode %q: use auto, native or generic", s)
}

func (m XDPMode) String() string {
	switch m {
	case XDPNative:
		return "native"
	case XDPGeneric:
		return "generic"
	}
	return "auto"
}

// Direction selects which frames of an interface are captured.
type Direction int

const (
	// DirIn captures received frames.
	DirIn Direction = iota
	// DirOut captures transmitted frames (TC only).
	DirOut
	// DirInOut captures both (TC only).
	DirInOut
)

// ParseDirection parses "in", "out" or "inout".
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "in", "":
		return DirIn, nil
	case "out":
		return DirOut, nil
	case "inout":
		return DirInOut, nil
	}
	return 0, fmt.Errorf("unknown direction %q: use in, out or inout", s)
}

func (d Direction) String() string {
	switch d {
	case DirOut:
		return "out"
	case DirInOut:
		return "inout"
	}
	return "in"
}

// Limits and defaults.
const (
	// MaxSnapLen is tcpdump's maximum and default: GRO/TSO super-frames
	// seen at TC and BIG TCP exceed 64 KiB.
	MaxSnapLen         = 262144
	DefaultSnapLen     = MaxSnapLen
	DefaultRingSize    = 8 << 20
	MinRingSize        = 1 << 14
	DefaultFlushPeriod = 50 * time.Millisecond
	// MaxWindow is the most bytes of a frame the filter can see: a
	// maximal snapshot plus a reinserted VLAN tag.
	MaxWindow = MaxSnapLen + 4
	// FilterStub is the symbol of the filter function that pkg/filter
	// replaces. See bpf/capture.c for its calling convention.
	FilterStub = "rt_filter"
	// MaxInterfaces is how many interfaces one capture can hold.
	MaxInterfaces = 64
	// MaxCapturesPerInterface is how many captures can share one
	// interface (RT_MAX_CAPS: a record's mask has a bit per capture).
	MaxCapturesPerInterface = 64
)

// Filter selects frames inside the BPF program.
type Filter struct {
	// Insns is the translated filter for a pcap link type: the body of a
	// function with the calling convention of a filter (see bpf/capture.c,
	// rt_filter), returning non-zero to accept. The capture package calls
	// it from the dispatcher it puts in place of FilterStub; it must not
	// modify the instructions returned.
	Insns func(linkType uint16) (asm.Instructions, error)
	// Window is how many leading bytes of a frame the filter may read
	// (MaxWindow when unknown). The program copies that many bytes into a
	// scratch buffer for the filter; the capture copies SnapLen bytes of
	// a matching frame straight into the ring.
	Window func(linkType uint16) (uint32, error)
}

// Config describes one capture.
type Config struct {
	Interfaces []string
	Hook       Hook
	Direction  Direction
	SnapLen    uint32
	// RingSize is the size of each per-CPU ring in bytes, a power of two.
	RingSize int
	// WakeupBytes: the reader is woken when this much data is queued in a
	// ring; below it, records wait for the flush timer. Default RingSize/4.
	WakeupBytes int
	// FlushInterval bounds how long a record waits in an idle ring and in
	// the writer's buffer.
	FlushInterval time.Duration
	// MonitorPort drops every received frame after capture (at XDP, or at
	// TC ingress where the kernel has no XDP support): for SPAN/TAP ports
	// whose traffic the host should not process.
	MonitorPort bool
	Filter      *Filter
	// NetNS is a network namespace path (e.g. /run/netns/x) whose
	// interfaces are captured; empty means the caller's.
	NetNS string
	// Count stops the capture after this many packets (0: no limit).
	Count uint64
	// ForceClsact attaches TC programs with netlink clsact even when TCX
	// is available (for kernels before 6.6 and for testing that path).
	ForceClsact bool
	// XDPMode: native, generic, or native with generic as fallback.
	XDPMode XDPMode
	// SharedRing: one ring (of RingSize bytes) for all CPUs and one
	// reader, instead of a ring and a reader per CPU. Producers on
	// different CPUs then contend for the ring's lock; see BENCHMARKS.md.
	SharedRing bool
	// PinReaders pins the reader of CPU n's ring to CPU n (per-CPU rings
	// only), so that a ring's pages stay in that CPU's cache.
	PinReaders bool
}

// Errors returned by Open and Run.
var (
	// ErrInterfaceGone: an interface disappeared during the capture. The
	// file is finished before Run returns it.
	ErrInterfaceGone = errors.New("interface went away during capture")
	// ErrPermission: the process lacks a capability; the message names it.
	ErrPermission = errors.New("insufficient privilege")
	// ErrNoInterface: an interface name does not exist.
	ErrNoInterface = errors.New("no such interface")
)

// recHeader is the size of struct rt_record (bpf/capture.h).
const recHeader = 32

// sizeClasses are the ring record sizes of bpf/capture.c (RT_CLASS): a
// record holds the header and a frame of up to that many bytes.
var sizeClasses = []uint32{
	64, 128, 192, 256, 320, 384, 448, 512,
	640, 768, 896, 1024, 1152, 1280, 1408, 1536,
	2048, 4096, 9216, 16384, 32768, 65540, 131072, MaxWindow,
}

// RecordSize is the ring space the largest record of a capture with this
// snapshot length takes: header, size class and the ring's own 8-byte
// header, rounded to 8 bytes. A reinserted VLAN tag can add 4 bytes to a
// snapshot, so the class is that of snaplen+4.
func RecordSize(snaplen uint32) int {
	n := min(snaplen+4, MaxWindow)
	for _, c := range sizeClasses {
		if n <= c {
			return (recHeader+int(c)+7)&^7 + 8
		}
	}
	return (recHeader+MaxWindow+7)&^7 + 8
}

func ceilPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
