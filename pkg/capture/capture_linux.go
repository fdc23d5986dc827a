package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// PacketWriter receives captured packets. A pcapio.Writer is one; rotation
// and compression wrap it. Calls for one capture are serialized.
type PacketWriter interface {
	WritePacket(p *pcapio.Packet) error
	Flush() error
}

// statsWriter is implemented by writers that record interface statistics
// (pcapng ISBs); Stop calls it once at the end.
type statsWriter interface {
	WriteInterfaceStats(iface int, s pcapio.InterfaceStats) error
}

// Capture is one capture of an Engine: a slot on each of its interfaces.
type Capture struct {
	e       *Engine
	spec    Spec
	members []*member

	mu      sync.Mutex // serializes the writer
	w       PacketWriter
	werr    error // the writer failed (under mu): nothing more is written
	written atomic.Uint64
	ended   atomic.Bool // no more packets are written

	done      chan struct{}
	doneOnce  sync.Once
	cause     error         // why done closed; set before
	stopClaim atomic.Bool   // a StopMany took it on
	stopDone  chan struct{} // closed when its stop is over
	stopErr   error         // set before stopDone closes
	stopped   atomic.Bool

	// Set by Open (the one-capture form): the engine it owns, the
	// configuration and the writer that Run supplies.
	owned *Engine
	cfg   Config
	late  *lateWriter
}

func newCapture(e *Engine, spec Spec, w PacketWriter) *Capture {
	return &Capture{e: e, spec: spec, w: w, done: make(chan struct{}), stopDone: make(chan struct{})}
}

// Done is closed when the capture must be stopped: Count packets were
// written, an interface went away, writing failed, or Stop was called. Err
// says which.
func (c *Capture) Done() <-chan struct{} { return c.done }

// Err is why Done was closed: nil for Count reached or Stop, an error
// wrapping ErrInterfaceGone, or the write or read error.
func (c *Capture) Err() error {
	select {
	case <-c.done:
		return c.cause
	default:
		return nil
	}
}

func (c *Capture) signal(err error) {
	c.doneOnce.Do(func() {
		c.cause = err
		close(c.done)
	})
}

// Name is the capture's name (Spec.Name).
func (c *Capture) Name() string { return c.spec.Name }

// Spec returns the capture's effective spec (defaults filled in).
func (c *Capture) Spec() Spec { return c.spec }

// deliver writes one packet; it reports whether it was written.
func (c *Capture) deliver(ifc int, p *pcapio.Packet) bool {
	if c.ended.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended.Load() {
		return false
	}
	p.Interface = ifc
	if err := c.w.WritePacket(p); err != nil {
		c.werr = fmt.Errorf("write packet: %w", err)
		c.ended.Store(true)
		c.signal(c.werr)
		return false
	}
	if n := c.written.Add(1); c.spec.Count > 0 && n >= c.spec.Count {
		c.ended.Store(true)
		c.signal(nil)
	}
	return true
}

func (c *Capture) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped.Load() || c.ended.Load() {
		return
	}
	if err := c.w.Flush(); err != nil {
		c.werr = fmt.Errorf("flush output: %w", err)
		c.ended.Store(true)
		c.signal(c.werr)
	}
}

// Stop takes the capture out of its interfaces' programs (the other
// captures there keep running, and lose nothing), waits until every frame
// it matched before has reached its writer, writes interface statistics
// and flushes. An interface left without captures is released. Stop is
// idempotent and safe from any goroutine; it returns the first error of
// the capture (a write error) or of stopping it.
func (c *Capture) Stop() error {
	return c.e.StopMany([]*Capture{c})[0]
}

// StopMany stops several captures as Stop does, with one rebuild of each
// interface's programs, one grace period and one drain for all of them.
// The i-th error answers the i-th capture; a capture already stopping (or
// stopped) elsewhere is waited for.
func (e *Engine) StopMany(cs []*Capture) []error {
	var mine []*Capture
	for _, c := range cs {
		if c.stopClaim.CompareAndSwap(false, true) {
			mine = append(mine, c)
		}
	}
	if len(mine) > 0 {
		errs := e.stopCaptures(mine)
		for i, c := range mine {
			c.stopErr = errs[i]
			c.signal(nil)
			close(c.stopDone)
		}
	}
	out := make([]error, len(cs))
	for i, c := range cs {
		<-c.stopDone
		out[i] = c.stopErr
	}
	return out
}

// stopCaptures does StopMany's work for captures it claimed.
func (e *Engine) stopCaptures(cs []*Capture) []error {
	errs := make([][]error, len(cs))
	for _, c := range cs {
		if c.late != nil {
			// Run never came: nothing will supply a writer, and the
			// dispatcher must not wait for one while we drain.
			c.late.set(nil)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Out of every program: swap in programs without these slots, or
	// detach where they were the last; one plan per interface.
	removes := map[*ifaceState][]*member{}
	var touched []*ifaceState
	owner := map[*member]int{}
	for ci, c := range cs {
		for _, m := range c.members {
			s := m.iface
			delete(s.members, m.slot)
			owner[m] = ci
			if _, ok := removes[s]; !ok {
				touched = append(touched, s)
			}
			removes[s] = append(removes[s], m)
		}
	}
	for _, s := range touched {
		if s.dead() {
			continue
		}
		p, err := s.plan(nil, removes[s])
		if err == nil {
			if err = p.apply(); err != nil {
				p.abandon()
			} else {
				err = p.commit()
			}
		}
		if err != nil {
			for _, m := range removes[s] {
				ci := owner[m]
				errs[ci] = append(errs[ci], fmt.Errorf("remove capture %s from %s: %w", cs[ci].spec.Name, s.name, err))
			}
		}
	}
	// A program swapped out may still be running on another CPU: wait
	// until it has returned, then until the readers have passed what the
	// rings hold, busy records included.
	synchronizeRCU()
	for _, s := range touched {
		if s.torn {
			continue
		}
		s.fold()
		if err := s.fence(); err != nil {
			for _, m := range removes[s] {
				errs[owner[m]] = append(errs[owner[m]], err)
			}
		}
	}
	for ci, c := range cs {
		for _, m := range c.members {
			st, err := m.read()
			if err != nil {
				errs[ci] = append(errs[ci], err)
			}
			m.final.Store(&st)
			m.iface.unpublish(m)
		}
		c.mu.Lock()
		c.stopped.Store(true)
		if c.werr == nil {
			if err := c.writeStats(); err != nil {
				errs[ci] = append(errs[ci], err)
			}
			if err := c.w.Flush(); err != nil {
				errs[ci] = append(errs[ci], fmt.Errorf("flush output: %w", err))
			}
		}
		c.ended.Store(true)
		c.mu.Unlock()
	}
	for _, s := range touched {
		if len(s.members) == 0 && e.ifaces[s.name] == s {
			if err := s.teardown(); err != nil {
				for _, m := range removes[s] {
					errs[owner[m]] = append(errs[owner[m]], err)
				}
			}
			delete(e.ifaces, s.name)
		}
	}
	out := make([]error, len(cs))
	for i := range cs {
		out[i] = errors.Join(errs[i]...)
	}
	return out
}

// read computes the member's counters since it started.
func (m *member) read() (InterfaceStats, error) {
	s := m.iface
	is := InterfaceStats{Name: s.name, Index: s.index}
	s.mapsMu.RLock()
	defer s.mapsMu.RUnlock()
	if s.mapsClosed {
		return is, errors.New("interface already released")
	}
	for d, dst := range []*Counters{&is.In, &is.Out} {
		cs, err := s.maps.counterSum(capKey(m.slot, d))
		if err != nil {
			return is, err
		}
		*dst = cs.sub(m.base.dir[d])
		dst.Seen = 0
	}
	seen, err := s.seenOf(m)
	if err != nil {
		return is, err
	}
	is.In.Seen, is.Out.Seen = seen[0], seen[1]
	return is, nil
}

// Stats reads the capture's counters: per interface, what its programs saw
// and what this capture matched, captured and lost, since it started.
func (c *Capture) Stats() (Stats, error) {
	st := Stats{Written: c.written.Load()}
	for _, m := range c.members {
		if f := m.final.Load(); f != nil {
			st.Interfaces = append(st.Interfaces, *f)
			continue
		}
		is, err := m.read()
		if err != nil {
			if f := m.final.Load(); f != nil {
				is, err = *f, nil
			} else {
				return st, err
			}
		}
		st.Interfaces = append(st.Interfaces, is)
		st.Unowned += m.iface.unowned.Load()
	}
	return st, nil
}

// Written is how many packets have been handed to the writer so far.
func (c *Capture) Written() uint64 { return c.written.Load() }

// HookName says how the programs were attached, e.g. "xdp", "xdp-generic",
// "tcx" or "tc-clsact".
func (c *Capture) HookName() string {
	if len(c.members) == 0 || c.members[0].hook == "" {
		return c.spec.Hook.String()
	}
	return c.members[0].hook
}

// Interfaces lists the captured interfaces in file order.
func (c *Capture) Interfaces() []pcapio.Interface {
	out := make([]pcapio.Interface, len(c.members))
	for i, m := range c.members {
		out[i] = m.pcapInterface()
	}
	return out
}

// writeStats writes each interface's counters as a statistics block.
// Under c.mu.
func (c *Capture) writeStats() error {
	sw, ok := c.w.(statsWriter)
	if !ok {
		return nil
	}
	now := time.Now().UnixNano()
	for _, m := range c.members {
		f := m.final.Load()
		if f == nil {
			continue
		}
		t := f.Total()
		if err := sw.WriteInterfaceStats(m.fileIndex, pcapio.InterfaceStats{Timestamp: now, Received: t.Seen, Dropped: t.Lost(), Accepted: t.Matched}); err != nil {
			return fmt.Errorf("write interface statistics: %w", err)
		}
	}
	return nil
}

// Open attaches one capture with its own Engine (the form `ringtap
// capture` uses). Packets wait in the rings until Run supplies the writer.
// Close must be called.
func Open(cfg Config) (*Capture, error) {
	e, err := NewEngine(EngineOptions{
		RingSize: cfg.RingSize, WakeupBytes: cfg.WakeupBytes, FlushInterval: cfg.FlushInterval, NetNS: cfg.NetNS,
		XDPMode: cfg.XDPMode, ForceClsact: cfg.ForceClsact, SharedRing: cfg.SharedRing, PinReaders: cfg.PinReaders,
	})
	if err != nil {
		return nil, err
	}
	spec := Spec{Name: "capture", Interfaces: cfg.Interfaces, Hook: cfg.Hook, Direction: cfg.Direction, SnapLen: cfg.SnapLen,
		Filter: cfg.Filter, MonitorPort: cfg.MonitorPort, Count: cfg.Count}
	lw := &lateWriter{ready: make(chan struct{})}
	c, err := e.Start(spec, lw)
	if err != nil {
		e.Close()
		return nil, err
	}
	c.owned, c.late = e, lw
	o := e.Options()
	c.cfg = cfg
	c.cfg.RingSize, c.cfg.WakeupBytes, c.cfg.FlushInterval = o.RingSize, o.WakeupBytes, o.FlushInterval
	c.cfg.SnapLen, c.cfg.Hook = c.spec.SnapLen, c.spec.Hook
	return c, nil
}

// Config returns the effective configuration of a capture made by Open.
func (c *Capture) Config() Config { return c.cfg }

// Run hands the capture's packets to w until ctx is done, Count packets
// were written, an interface goes away (ErrInterfaceGone) or an error
// occurs; then it stops the capture (see Stop: everything the kernel wrote
// is drained) and returns. For captures made by Open.
func (c *Capture) Run(ctx context.Context, w PacketWriter) error {
	if c.late == nil {
		return errors.New("Run is for captures made by Open")
	}
	c.late.set(w)
	select {
	case <-ctx.Done():
	case <-c.done:
	}
	cause := c.Err()
	err := c.Stop()
	switch {
	case cause != nil && !errors.Is(cause, ErrInterfaceGone):
		return cause
	case err != nil:
		return err
	}
	return cause
}

// Close stops the capture if it runs and releases everything. Idempotent.
func (c *Capture) Close() error {
	err := c.Stop()
	if c.owned != nil {
		err = errors.Join(err, c.owned.Close())
	}
	return err
}

// lateWriter passes packets to the writer Run supplies; until then the
// dispatcher waits (the rings hold the packets).
type lateWriter struct {
	ready chan struct{}
	once  sync.Once
	w     PacketWriter
}

func (l *lateWriter) set(w PacketWriter) {
	l.once.Do(func() {
		if w == nil {
			w = discardWriter{}
		}
		l.w = w
		close(l.ready)
	})
}

func (l *lateWriter) WritePacket(p *pcapio.Packet) error {
	<-l.ready
	return l.w.WritePacket(p)
}

func (l *lateWriter) Flush() error {
	<-l.ready
	return l.w.Flush()
}

func (l *lateWriter) WriteInterfaceStats(iface int, s pcapio.InterfaceStats) error {
	<-l.ready
	if sw, ok := l.w.(statsWriter); ok {
		return sw.WriteInterfaceStats(iface, s)
	}
	return nil
}

type discardWriter struct{}

func (discardWriter) WritePacket(*pcapio.Packet) error { return nil }
func (discardWriter) Flush() error                     { return nil }

// pcap link types.
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101
)

func linkTypeOf(l netlink.Link) (uint16, error) {
	return LinkTypeFor(l.Attrs().EncapType, l.Attrs().Name)
}

// LinkTypeFor is the pcap link type of an interface with this link
// encapsulation (as netlink reports it), or an error naming the interface.
func LinkTypeFor(encap, name string) (uint16, error) {
	switch encap {
	case "ether", "loopback":
		return LinkTypeEthernet, nil
	case "none", "ipip", "sit", "tunnel6":
		// L3 devices (tun, wireguard): frames start at the IP header.
		return LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("interface %s has link encapsulation %q, which ringtap cannot capture yet", name, encap)
}

// pinToCPU binds the calling thread to cpu; a CPU that is possible but
// offline leaves the thread unpinned, with a warning.
func pinToCPU(cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		slog.Warn("cannot pin ring reader", "cpu", cpu, "error", err)
	}
}
