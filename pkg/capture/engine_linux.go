package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ringtap/ringtap/gen"
	"github.com/ringtap/ringtap/pkg/caps"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// EngineOptions are the settings shared by every capture of an Engine.
type EngineOptions struct {
	// RingSize is the size of each per-CPU ring in bytes, a power of two.
	// Each captured interface has one ring per online CPU, shared by every
	// capture on it.
	RingSize int
	// WakeupBytes: the reader is woken when this much data is queued in a
	// ring; below it, records wait for the flush timer. Default RingSize/4.
	WakeupBytes int
	// FlushInterval bounds how long a record waits in an idle ring and in
	// a writer's buffer.
	FlushInterval time.Duration
	// NetNS is a network namespace path (e.g. /run/netns/x) whose
	// interfaces are captured; empty means the caller's.
	NetNS string
	// XDPMode: native, generic, or native with generic as fallback.
	XDPMode XDPMode
	// ForceClsact attaches TC programs with netlink clsact even when TCX
	// is available (for kernels before 6.6 and for testing that path).
	ForceClsact bool
	// SharedRing: one ring for all CPUs of an interface and one reader.
	SharedRing bool
	// PinReaders pins the reader of CPU n's ring to CPU n.
	PinReaders bool
	Logger     *slog.Logger
}

func (o *EngineOptions) withDefaults() (EngineOptions, error) {
	opts := *o
	if opts.RingSize == 0 {
		opts.RingSize = DefaultRingSize
	}
	if opts.RingSize < MinRingSize || opts.RingSize&(opts.RingSize-1) != 0 {
		return opts, fmt.Errorf("ring size %d invalid: use a power of two of at least %d bytes", opts.RingSize, MinRingSize)
	}
	if opts.WakeupBytes <= 0 {
		opts.WakeupBytes = opts.RingSize / 4
	}
	if opts.WakeupBytes >= opts.RingSize {
		return opts, fmt.Errorf("wakeup threshold %d must be smaller than the ring (%d bytes): the reader would never be woken", opts.WakeupBytes, opts.RingSize)
	}
	if opts.SharedRing && opts.PinReaders {
		return opts, errors.New("a shared ring has one reader: pinning readers needs per-CPU rings")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushPeriod
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return opts, nil
}

// Engine runs any number of captures in one network namespace. The
// captures on an interface share its programs (one per hook), its rings and
// its reader goroutines: starting, changing or stopping one capture
// rebuilds the interface's programs with a slot more or less and swaps
// them in atomically, so no other capture there is detached or loses a
// frame. Methods are safe for concurrent use.
type Engine struct {
	opts   EngineOptions
	kernel Kernel
	spec   *ebpf.CollectionSpec
	clock  bootClock

	mu     sync.Mutex // serializes starts, stops and interface teardown
	ifaces map[string]*ifaceState
	closed bool
}

// NewEngine checks privileges and the kernel and prepares the programs.
func NewEngine(opts EngineOptions) (*Engine, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}
	k, err := ProbeKernel()
	if err != nil {
		return nil, permission(err)
	}
	if !k.RingBuf {
		return nil, requireKernel(k, &Config{}, false)
	}
	spec, err := gen.LoadCapture()
	if err != nil {
		return nil, fmt.Errorf("read capture programs: %w", err)
	}
	e := &Engine{opts: o, kernel: k, spec: spec, ifaces: map[string]*ifaceState{}}
	e.clock.sample()
	return e, nil
}

// checkCaps refuses at once, naming them, when the process lacks the
// capabilities a capture needs (the kernel would refuse later with EPERM,
// or, without CAP_PERFMON, have the verifier reject the programs).
func checkCaps() error {
	eff, err := caps.Effective()
	if err != nil {
		return nil // cannot tell: the kernel will say
	}
	if missing := eff.MissingForCapture(); len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrPermission, caps.Needs("capturing", missing))
	}
	return nil
}

// Options returns the effective options (defaults filled in).
func (e *Engine) Options() EngineOptions { return e.opts }

// Spec describes one capture of an Engine.
type Spec struct {
	// Name identifies the capture in logs and errors.
	Name       string
	Interfaces []string
	Hook       Hook
	Direction  Direction
	SnapLen    uint32
	Filter     *Filter
	// MonitorPort drops every received frame after capture (at XDP, or at
	// TC ingress where the kernel has no XDP support). It is a property
	// of the interface: every capture there must agree.
	MonitorPort bool
	// Count stops the capture after this many packets (0: no limit).
	Count uint64

	autoHook bool // the hook was left to ringtap
}

// Start attaches a capture; w receives its packets from the moment Start
// returns. On error nothing changed: every other capture kept running
// untouched. The caller must call Stop.
func (e *Engine) Start(spec Spec, w PacketWriter) (*Capture, error) {
	cs, errs := e.StartMany([]Request{{Spec: spec, Writer: w}})
	return cs[0], errs[0]
}

// Request is one capture for StartMany.
type Request struct {
	Spec   Spec
	Writer PacketWriter
}

// StartMany starts several captures, with one rebuild of each interface's
// programs for all of them (Start re-verifies every filter on the hook for
// each capture it adds). Each request succeeds or fails on its own: when
// the combined program of an interface cannot be built, the captures for
// it are started one by one, so that one bad capture does not keep the
// others out. The i-th capture or error answers the i-th request.
func (e *Engine) StartMany(reqs []Request) ([]*Capture, []error) {
	caps := make([]*Capture, len(reqs))
	errs := make([]error, len(reqs))
	byIface := map[string][]int{}
	var order []string
	for i := range reqs {
		if errs[i] = e.checkSpec(&reqs[i].Spec); errs[i] != nil {
			continue
		}
		if ifs := reqs[i].Spec.Interfaces; len(ifs) == 1 {
			if _, ok := byIface[ifs[0]]; !ok {
				order = append(order, ifs[0])
			}
			byIface[ifs[0]] = append(byIface[ifs[0]], i)
			continue
		}
		var got []*Capture
		if got, errs[i] = e.startGroup(reqs[i : i+1]); errs[i] == nil {
			caps[i] = got[0]
		}
	}
	for _, name := range order {
		idx := byIface[name]
		group := make([]Request, len(idx))
		for k, i := range idx {
			group[k] = reqs[i]
		}
		got, err := e.startGroup(group)
		if err == nil {
			for k, i := range idx {
				caps[i] = got[k]
			}
			continue
		}
		if len(idx) == 1 {
			errs[idx[0]] = err
			continue
		}
		for _, i := range idx {
			var one []*Capture
			if one, errs[i] = e.startGroup(reqs[i : i+1]); errs[i] == nil {
				caps[i] = one[0]
			}
		}
	}
	return caps, errs
}

// startGroup starts reqs (specs checked) all together or not at all.
func (e *Engine) startGroup(reqs []Request) ([]*Capture, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("capture engine is closed")
	}
	var (
		caps    []*Capture
		created []*ifaceState
		touched []*ifaceState
		adds    = map[*ifaceState][]*member{}
	)
	fail := func(err error) ([]*Capture, error) {
		for _, c := range caps {
			for _, m := range c.members {
				m.iface.release(m)
			}
		}
		for _, s := range created {
			s.teardown()
			delete(e.ifaces, s.name)
		}
		return nil, err
	}
	for _, r := range reqs {
		c := newCapture(e, r.Spec, r.Writer)
		caps = append(caps, c)
		for i, name := range r.Spec.Interfaces {
			s, ok := e.ifaces[name]
			if !ok || s.dead() {
				if ok {
					// A gone interface still held by stopping captures.
					return fail(fmt.Errorf("%w: %s (it went away and its captures are still finishing)", ErrInterfaceGone, name))
				}
				var err error
				if s, err = newIfaceState(e, name); err != nil {
					return fail(err)
				}
				e.ifaces[name] = s
				created = append(created, s)
			}
			m, err := s.reserve(c, i)
			if err != nil {
				return fail(fmt.Errorf("interface %s: %w", name, err))
			}
			c.members = append(c.members, m)
			if _, ok := adds[s]; !ok {
				touched = append(touched, s)
			}
			adds[s] = append(adds[s], m)
		}
	}
	// Fold the counters of instances swapped out earlier, so that the
	// lists a Stats call walks stay short.
	for _, s := range touched {
		if len(s.retired) > 16 {
			synchronizeRCU()
			for _, s := range e.ifaces {
				s.fold()
			}
			break
		}
	}
	// Build every new program before touching any hook, then swap.
	var plans []*plan
	for _, s := range touched {
		p, err := s.plan(adds[s], nil)
		if err != nil {
			for _, q := range plans {
				q.abandon()
			}
			return fail(fmt.Errorf("interface %s: %w", s.name, err))
		}
		plans = append(plans, p)
	}
	for i, p := range plans {
		if err := p.apply(); err != nil {
			for j := i - 1; j >= 0; j-- {
				plans[j].revert()
			}
			p.revert()
			for _, q := range plans[i+1:] {
				q.abandon()
			}
			return fail(fmt.Errorf("interface %s: %w", p.s.name, permission(err)))
		}
	}
	for _, p := range plans {
		if err := p.commit(); err != nil {
			e.opts.Logger.Warn("retire replaced programs", "interface", p.s.name, "error", err)
		}
	}
	for _, c := range caps {
		for _, m := range c.members {
			e.opts.Logger.Debug("capture started", "capture", c.spec.Name, "interface", m.iface.name, "slot", m.slot, "hook", m.hook)
		}
	}
	return caps, nil
}

// checkSpec validates spec and fills in defaults.
func (e *Engine) checkSpec(spec *Spec) error {
	if len(spec.Interfaces) == 0 {
		return errors.New("no interface given: use -i IFACE")
	}
	if len(spec.Interfaces) > MaxInterfaces {
		return fmt.Errorf("%d interfaces given, at most %d per capture", len(spec.Interfaces), MaxInterfaces)
	}
	seen := map[string]bool{}
	for _, n := range spec.Interfaces {
		if seen[n] {
			return fmt.Errorf("interface %s given twice", n)
		}
		seen[n] = true
	}
	if spec.SnapLen == 0 {
		spec.SnapLen = DefaultSnapLen
	}
	if spec.SnapLen > MaxSnapLen {
		return fmt.Errorf("snaplen %d out of range: use 1 to %d", spec.SnapLen, MaxSnapLen)
	}
	if rec := RecordSize(spec.SnapLen); e.opts.RingSize < 2*rec {
		return fmt.Errorf("a %d-byte ring cannot hold records of snaplen %d (%d bytes each, the ring must hold two): use a --ring-size of at least %d or a smaller -s",
			e.opts.RingSize, spec.SnapLen, rec, ceilPow2(2*rec))
	}
	auto := spec.Hook == HookAuto
	if auto {
		spec.Hook = HookXDP
		if spec.Direction != DirIn {
			spec.Hook = HookTC
		}
	}
	if e.opts.XDPMode != XDPAuto && spec.Hook == HookTC {
		return fmt.Errorf("xdp mode %s needs the XDP hook", e.opts.XDPMode)
	}
	if spec.Hook == HookXDP && spec.Direction != DirIn {
		return fmt.Errorf("direction %s needs --hook tc: XDP sees received frames only", spec.Direction)
	}
	if spec.MonitorPort && spec.Direction != DirIn {
		return errors.New("--monitor-port drops received frames: it needs --direction in")
	}
	cfg := Config{Hook: spec.Hook, XDPMode: e.opts.XDPMode}
	if err := requireKernel(e.kernel, &cfg, auto); err != nil {
		return err
	}
	spec.Hook = cfg.Hook
	spec.autoHook = auto
	return nil
}

// Close stops every capture still running (draining them) and releases
// every interface. Idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var running []*Capture
	seen := map[*Capture]bool{}
	for _, s := range e.ifaces {
		for _, m := range s.members {
			if !seen[m.c] {
				seen[m.c] = true
				running = append(running, m.c)
			}
		}
	}
	e.mu.Unlock()
	errs := e.StopMany(running)
	e.mu.Lock()
	for name, s := range e.ifaces {
		s.teardown()
		delete(e.ifaces, name)
	}
	e.mu.Unlock()
	return errors.Join(errs...)
}

// InterfaceInfo describes an interface the engine holds.
type InterfaceInfo struct {
	Name     string
	Index    int
	Captures int
	// Hooks: how each program is attached ("xdp", "tcx", ...).
	Hooks []string
	// Rings and RingBytes: the kernel memory its rings take.
	Rings     int
	RingBytes int64
	// Seen, Records and RingDrops are the programs' own counters, by
	// program (XDP, TC ingress, TC egress): frames they ran on, records
	// written (one per frame, however many captures matched it) and
	// records lost to a full ring.
	Seen, Records, RingDrops [3]uint64
	// Unowned: records whose capture slot was empty (should stay 0).
	Unowned uint64
}

// Interfaces lists the interfaces the engine has programs on.
func (e *Engine) Interfaces() []InterfaceInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []InterfaceInfo
	for _, s := range e.ifaces {
		info := InterfaceInfo{Name: s.name, Index: s.index, Captures: len(s.members), Rings: len(s.maps.ringMaps),
			RingBytes: int64(len(s.maps.ringMaps)) * int64(e.opts.RingSize)}
		s.mapsMu.RLock()
		for k, h := range s.hooks {
			if h != nil {
				info.Hooks = append(info.Hooks, h.hook)
			}
			if !s.mapsClosed {
				cs := s.kindCounters(k)
				info.Seen[k], info.Records[k], info.RingDrops[k] = cs.Seen, cs.Captured, cs.Dropped
			}
		}
		s.mapsMu.RUnlock()
		info.Unowned = s.unowned.Load()
		out = append(out, info)
	}
	return out
}

// interfaceInfo gives the pcapng interface description of a member.
func (m *member) pcapInterface() pcapio.Interface {
	return pcapio.Interface{Name: m.iface.name, LinkType: m.iface.linkType, SnapLen: m.c.spec.SnapLen}
}
