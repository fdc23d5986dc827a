package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/ringbuf"
)

// Batches: each reader fills batches of up to batchArena bytes; an
// interface has up to batchesPerR per ring, allocated as they are needed.
const (
	batchArena  = 1 << 20
	batchRecs   = 16384
	batchesPerR = 4
	// fenceTimeout bounds how long a stop waits for the readers to pass
	// what the rings held (only a writer blocked for that long delays it).
	fenceTimeout = 30 * time.Second
)

// ifaceState is one captured interface: its maps and rings, the readers
// and the dispatcher that hands each record to the captures whose slot
// bits it carries, and the programs attached per hook.
type ifaceState struct {
	e        *Engine
	name     string
	index    int
	linkType uint16
	loopback bool

	maps    *maps
	readers []*ringbuf.Reader
	pool    *ringbuf.Pool
	items   chan item
	slots   atomic.Pointer[slotTable] // read by the dispatcher, replaced under e.mu

	// Under e.mu.
	members map[int]*member // by slot, captures attached or being attached
	hooks   [numKinds]*attached
	cl      *clsact
	torn    bool
	// offloads: xdpOffloads before ringtap attached XDP (nil: not read).
	offloads map[string]bool
	// Program instances: free counter keys, and instances swapped out
	// whose counters are not yet folded into their members' (they may
	// still run until an RCU grace period has passed). Changed under
	// e.mu and mapsMu.
	freeKeys []int
	retired  []*instance
	kindAcc  [numKinds]Counters // counters of folded instances, per kind

	gone     atomic.Bool
	unowned  atomic.Uint64 // records whose slot had no capture (should stay 0)
	fenceMu  sync.Mutex
	fences   []*fence
	stopTick chan struct{}
	readWG   sync.WaitGroup
	dispWG   sync.WaitGroup
	tickWG   sync.WaitGroup
	readErr  atomic.Pointer[error]
	// mapsMu guards the maps' lifetime against counter reads.
	mapsMu     sync.RWMutex
	mapsClosed bool
}

type slotTable [MaxCapturesPerInterface]*member

// attached is the program of one kind on the interface.
type attached struct {
	prog *ebpf.Program
	link hookLink
	hook string
	inst *instance
}

// instance is one build of a program: its own counter key and the
// members whose filters it evaluates. A capture's seen is the sum of the
// seen counters of the instances it was in: exact, however often the
// others on its hook changed.
type instance struct {
	key     int
	kind    int
	members map[*member]bool
}

// item is what the readers send the dispatcher: a batch, or word that a
// reader has passed a fence.
type item struct {
	b     *ringbuf.Batch
	fence *fence
}

// fence is passed once every reader has consumed its ring up to pos and
// the dispatcher has handed everything before to the writers.
type fence struct {
	pos    []uint64
	passed []bool
	left   atomic.Int32
	done   chan struct{}
}

// member is one capture's part on one interface.
type member struct {
	c         *Capture
	iface     *ifaceState
	slot      int
	fileIndex int   // the interface's index in the capture's file
	kinds     []int // the programs it is in
	hook      string
	base      memberBase
	final     atomic.Pointer[InterfaceStats]
	seenAcc   [2]uint64 // seen of folded instances, per direction (under mapsMu)
	dirty     bool      // written to since the last flush (dispatcher only)
}

// memberBase holds the slot counters at the member's start: slots are
// reused over time, a capture reports the difference.
type memberBase struct {
	dir [2]Counters
}

func newIfaceState(e *Engine, name string) (_ *ifaceState, err error) {
	s := &ifaceState{e: e, name: name, members: map[int]*member{}, stopTick: make(chan struct{})}
	for k := progKeys - 1; k >= 0; k-- {
		s.freeKeys = append(s.freeKeys, k)
	}
	s.slots.Store(&slotTable{})
	err = inNetNS(e.opts.NetNS, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return fmt.Errorf("%w: %s", ErrNoInterface, name)
			}
			return fmt.Errorf("look up interface %s: %w", name, err)
		}
		if s.linkType, err = linkTypeOf(l); err != nil {
			return err
		}
		s.index = l.Attrs().Index
		s.loopback = l.Attrs().Flags&net.FlagLoopback != 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cl = &clsact{ifname: name, ifindex: s.index, netns: e.opts.NetNS}
	if s.maps, err = newMaps(e.spec, e.opts.RingSize, e.opts.SharedRing); err != nil {
		return nil, permission(err)
	}
	defer func() {
		if err != nil {
			s.closeReaders()
			s.maps.close()
		}
	}()
	for i, m := range s.maps.ringMaps {
		r, err := ringbuf.NewReader(m)
		if err != nil {
			return nil, fmt.Errorf("open ring reader for cpu %d: %w", s.maps.ringCPUs[i], err)
		}
		s.readers = append(s.readers, r)
	}
	s.pool = ringbuf.NewPool(batchesPerR*len(s.readers), batchArena, batchRecs)
	s.items = make(chan item, batchesPerR*len(s.readers)+len(s.readers))
	for i, r := range s.readers {
		s.readWG.Add(1)
		go func() {
			defer s.readWG.Done()
			if cpu := s.maps.ringCPUs[i]; e.opts.PinReaders && cpu >= 0 {
				// The thread dies with the goroutine: the affinity
				// does not leak to other goroutines.
				runtime.LockOSThread()
				pinToCPU(cpu)
			}
			s.readLoop(i, r)
		}()
	}
	s.dispWG.Add(1)
	go func() {
		defer s.dispWG.Done()
		s.dispatchLoop()
	}()
	s.tickWG.Add(1)
	go func() {
		defer s.tickWG.Done()
		s.tickLoop()
	}()
	return s, nil
}

func (s *ifaceState) dead() bool { return s.gone.Load() || s.torn }

// reserve gives capture c a free slot on the interface, decides which
// programs it joins and records its counter baselines. Nothing is attached
// yet: plan and apply do that.
func (s *ifaceState) reserve(c *Capture, fileIndex int) (*member, error) {
	slot := -1
	for i := range MaxCapturesPerInterface {
		if s.members[i] == nil && s.slots.Load()[i] == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		return nil, fmt.Errorf("%d captures already share it, the most one interface takes", MaxCapturesPerInterface)
	}
	for _, o := range s.members {
		if o.c.spec.MonitorPort != c.spec.MonitorPort {
			return nil, fmt.Errorf("capture %q has monitor_port %v and %q %v: it is a property of the interface, every capture there must agree",
				o.c.spec.Name, o.c.spec.MonitorPort, c.spec.Name, c.spec.MonitorPort)
		}
	}
	m := &member{c: c, iface: s, slot: slot, fileIndex: fileIndex}
	switch {
	case c.spec.Hook == HookXDP:
		m.kinds = []int{kindXDP}
		if s.hooks[kindXDP] == nil {
			var id uint32
			err := inNetNS(s.e.opts.NetNS, func() (err error) {
				id, err = foreignXDP(s.index)
				return err
			})
			if err != nil {
				return nil, err
			}
			if id != 0 {
				if !c.spec.autoHook {
					return nil, fmt.Errorf("%w (id %d): ringtap never replaces it; use hook tc", ErrXDPBusy, id)
				}
				s.e.opts.Logger.Warn("interface runs an XDP program ringtap did not attach; capturing at TC instead (ringtap never replaces it)",
					"interface", s.name, "xdp_prog_id", id, "capture", c.spec.Name)
				m.kinds = []int{kindTCIn}
			}
		}
	case c.spec.Direction == DirIn || (s.loopback && c.spec.Direction == DirInOut):
		// On loopback a packet leaves and enters the same device:
		// capture it once, as it enters, as libpcap does.
		m.kinds = []int{kindTCIn}
	case c.spec.Direction == DirOut:
		m.kinds = []int{kindTCOut}
	default:
		m.kinds = []int{kindTCIn, kindTCOut}
	}
	for d := range 2 {
		cs, err := s.maps.counterSum(capKey(slot, d))
		if err != nil {
			return nil, err
		}
		m.base.dir[d] = cs
	}
	s.members[slot] = m
	return m, nil
}

// release forgets a member that never went live.
func (s *ifaceState) release(m *member) {
	if s.members[m.slot] == m {
		delete(s.members, m.slot)
	}
	s.unpublish(m)
}

func (s *ifaceState) publish(m *member) {
	t := *s.slots.Load()
	t[m.slot] = m
	s.slots.Store(&t)
}

func (s *ifaceState) unpublish(m *member) {
	t := *s.slots.Load()
	if t[m.slot] == m {
		t[m.slot] = nil
		s.slots.Store(&t)
	}
}

// plan is a change of an interface's programs: the new program of each
// kind affected, built and verified, not attached yet.
type plan struct {
	s       *ifaceState
	add     []*member
	changes []change
}

type change struct {
	kind    int
	inst    *instance     // the new program's
	prog    *ebpf.Program // nil: no capture left on this hook
	old     *attached
	next    *attached // after apply
	swapped bool      // old.link now runs prog
}

// plan builds the programs of every kind that the members joining (add,
// already in s.members) or leaving (remove, already out of s.members) are
// in: one rebuild per kind however many captures change at once.
func (s *ifaceState) plan(add, remove []*member) (*plan, error) {
	p := &plan{s: s, add: add}
	var kinds []int
	seenKind := [numKinds]bool{}
	for _, m := range append(append([]*member{}, add...), remove...) {
		for _, k := range m.kinds {
			if !seenKind[k] {
				seenKind[k] = true
				kinds = append(kinds, k)
			}
		}
	}
	monitor := false
	for _, o := range s.members {
		monitor = monitor || o.c.spec.MonitorPort
	}
	for _, k := range kinds {
		var slots []slotProg
		for _, o := range s.members {
			for _, ok := range o.kinds {
				if ok == k {
					slots = append(slots, slotProg{slot: o.slot, snaplen: o.c.spec.SnapLen, filter: o.c.spec.Filter})
				}
			}
		}
		ch := change{kind: k, old: s.hooks[k]}
		if len(slots) > 0 {
			key, err := s.allocKey()
			if err != nil {
				p.abandon()
				return nil, err
			}
			ch.inst = &instance{key: key, kind: k, members: map[*member]bool{}}
			for _, o := range s.members {
				for _, ok := range o.kinds {
					if ok == k {
						ch.inst.members[o] = true
					}
				}
			}
			prog, err := loadProgram(s.e.spec, s.maps, progParams{
				kind: k, key: key, linkType: s.linkType, wakeup: uint32(s.e.opts.WakeupBytes),
				monitor: monitor && k != kindTCOut, slots: slots,
			})
			if err != nil {
				s.freeKeys = append(s.freeKeys, key)
				ch.inst = nil
				p.abandon()
				return nil, err
			}
			ch.prog = prog
		}
		p.changes = append(p.changes, ch)
	}
	return p, nil
}

// apply puts the plan's programs in place: an attached hook gets its
// program swapped atomically, a new one is attached, one without captures
// left is detached. A joining member is published first, so that the
// records its bit marks find it.
func (p *plan) apply() error {
	s := p.s
	for _, m := range p.add {
		s.publish(m)
	}
	for i := range p.changes {
		ch := &p.changes[i]
		switch {
		case ch.prog == nil:
			// Detached at commit.
		case ch.old != nil:
			if err := ch.old.link.Update(ch.prog); err != nil {
				return fmt.Errorf("swap the %s program: %w", ch.old.hook, err)
			}
			ch.swapped = true
			ch.next = &attached{prog: ch.prog, link: ch.old.link, hook: ch.old.hook, inst: ch.inst}
		default:
			var a *attached
			err := inNetNS(s.e.opts.NetNS, func() error {
				var (
					l    hookLink
					hook string
					err  error
				)
				if ch.kind == kindXDP {
					if s.offloads == nil {
						if s.offloads, err = readOffloads(s.name); err != nil {
							s.e.opts.Logger.Debug("cannot read offloads; they are not restored after XDP", "interface", s.name, "error", err)
							s.offloads = map[string]bool{}
						}
					}
					l, hook, err = attachXDP(ch.prog, s.name, s.index, s.e.opts.XDPMode)
				} else {
					l, hook, err = attachTC(ch.prog, s.cl, s.name, s.index, ch.kind == kindTCIn, s.e.opts.ForceClsact)
				}
				if err == nil {
					a = &attached{prog: ch.prog, link: l, hook: hook, inst: ch.inst}
				}
				return err
			})
			if err != nil {
				return err
			}
			ch.next = a
		}
	}
	for _, m := range p.add {
		for _, ch := range p.changes {
			for _, k := range m.kinds {
				if ch.kind == k && ch.next != nil {
					m.hook = ch.next.hook
				}
			}
		}
	}
	return nil
}

// revert undoes an applied plan (a later interface of the same capture
// failed).
func (p *plan) revert() {
	s := p.s
	for i := range p.changes {
		ch := &p.changes[i]
		switch {
		case ch.swapped:
			if err := ch.old.link.Update(ch.old.prog); err != nil {
				s.e.opts.Logger.Error("restore a program after a failed start", "interface", s.name, "error", err)
			}
		case ch.next != nil:
			_ = inNetNS(s.e.opts.NetNS, ch.next.link.Close)
		}
		if ch.prog != nil {
			ch.prog.Close()
		}
		if ch.inst != nil {
			// It may have run: fold it like any instance swapped out.
			s.retire(ch.inst)
		}
		ch.next = nil
	}
	for _, m := range p.add {
		s.unpublish(m)
	}
}

// abandon releases the programs of a plan never applied.
func (p *plan) abandon() {
	for _, ch := range p.changes {
		if ch.prog != nil {
			ch.prog.Close()
		}
		if ch.inst != nil {
			p.s.freeKeys = append(p.s.freeKeys, ch.inst.key)
		}
	}
}

// commit retires what the applied plan replaced.
func (p *plan) commit() error {
	s := p.s
	var errs []error
	for _, ch := range p.changes {
		if ch.prog == nil && ch.old != nil {
			if err := inNetNS(s.e.opts.NetNS, ch.old.link.Close); err != nil && !s.gone.Load() {
				errs = append(errs, fmt.Errorf("detach from %s: %w", s.name, err))
			}
			if ch.kind == kindXDP {
				errs = append(errs, s.restoreOffloads())
			}
		}
		if ch.old != nil && ch.old.prog != ch.prog {
			ch.old.prog.Close()
		}
		s.mapsMu.Lock()
		if ch.old != nil {
			s.retired = append(s.retired, ch.old.inst)
		}
		s.hooks[ch.kind] = ch.next
		s.mapsMu.Unlock()
	}
	return errors.Join(errs...)
}

// allocKey takes a free instance key, folding the retired instances first
// when none is left. Under e.mu.
func (s *ifaceState) allocKey() (int, error) {
	if len(s.freeKeys) == 0 {
		synchronizeRCU()
		s.fold()
	}
	if len(s.freeKeys) == 0 {
		return 0, fmt.Errorf("all %d program instance counters are in use", progKeys)
	}
	k := s.freeKeys[len(s.freeKeys)-1]
	s.freeKeys = s.freeKeys[:len(s.freeKeys)-1]
	return k, nil
}

// retire queues an instance that was swapped out for folding.
func (s *ifaceState) retire(in *instance) {
	s.mapsMu.Lock()
	s.retired = append(s.retired, in)
	s.mapsMu.Unlock()
}

// fold adds the counters of retired instances to their members and to
// the interface's totals, and frees their keys. An RCU grace period must
// have passed since they were swapped out. Under e.mu.
func (s *ifaceState) fold() {
	s.mapsMu.Lock()
	defer s.mapsMu.Unlock()
	if s.mapsClosed {
		s.retired = nil
		return
	}
	keep := s.retired[:0]
	for _, in := range s.retired {
		cs, err := s.maps.counterSum(progKey(in.key))
		if err == nil {
			err = s.maps.zeroCounters(progKey(in.key))
		}
		if err != nil {
			keep = append(keep, in)
			continue
		}
		for m := range in.members {
			m.seenAcc[kindDir(in.kind)] += cs.Seen
		}
		s.kindAcc[in.kind].add(cs)
		s.freeKeys = append(s.freeKeys, in.key)
	}
	s.retired = keep
}

// seenOf sums the seen counters of the instances m is in, current and
// retired. Under mapsMu (read).
func (s *ifaceState) seenOf(m *member) ([2]uint64, error) {
	seen := m.seenAcc
	add := func(in *instance) error {
		if in == nil || !in.members[m] {
			return nil
		}
		cs, err := s.maps.counterSum(progKey(in.key))
		if err != nil {
			return err
		}
		seen[kindDir(in.kind)] += cs.Seen
		return nil
	}
	for _, a := range s.hooks {
		if a != nil {
			if err := add(a.inst); err != nil {
				return seen, err
			}
		}
	}
	for _, in := range s.retired {
		if err := add(in); err != nil {
			return seen, err
		}
	}
	return seen, nil
}

// kindCounters are the counters of every instance of a kind so far.
// Under mapsMu (read).
func (s *ifaceState) kindCounters(k int) Counters {
	sum := s.kindAcc[k]
	if a := s.hooks[k]; a != nil && a.inst != nil {
		if cs, err := s.maps.counterSum(progKey(a.inst.key)); err == nil {
			sum.add(cs)
		}
	}
	for _, in := range s.retired {
		if in.kind == k {
			if cs, err := s.maps.counterSum(progKey(in.key)); err == nil {
				sum.add(cs)
			}
		}
	}
	return sum
}

// restoreOffloads turns back on the offloads XDP turned off.
func (s *ifaceState) restoreOffloads() error {
	before := s.offloads
	s.offloads = nil
	if len(before) == 0 || s.gone.Load() {
		return nil
	}
	return inNetNS(s.e.opts.NetNS, func() error {
		// By index: the interface may have been renamed, and another
		// may carry its old name now.
		l, err := netlink.LinkByIndex(s.index)
		if err != nil {
			return nil // gone: nothing to restore
		}
		return restoreOffloads(l.Attrs().Name, before)
	})
}

// fence waits until everything the rings hold now has been handed to the
// writers. Records reserved but not yet committed (busy) are waited for.
func (s *ifaceState) fence() error {
	f := &fence{pos: make([]uint64, len(s.readers)), passed: make([]bool, len(s.readers)), done: make(chan struct{})}
	f.left.Store(int32(len(s.readers)))
	s.fenceMu.Lock()
	for i, r := range s.readers {
		f.pos[i] = r.ProducerPos()
	}
	s.fences = append(s.fences, f)
	s.fenceMu.Unlock()
	for _, r := range s.readers {
		r.Interrupt()
	}
	t := time.NewTimer(fenceTimeout)
	defer t.Stop()
	select {
	case <-f.done:
		return nil
	case <-t.C:
		return fmt.Errorf("drain the rings of %s: the writers took more than %v", s.name, fenceTimeout)
	}
}

// passFences tells the dispatcher, after the batches already sent, about
// the fences reader i has passed.
func (s *ifaceState) passFences(i int, r *ringbuf.Reader) {
	s.fenceMu.Lock()
	if len(s.fences) == 0 {
		s.fenceMu.Unlock()
		return
	}
	cons := r.ConsumerPos()
	var passed []*fence
	keep := s.fences[:0]
	for _, f := range s.fences {
		if !f.passed[i] && cons >= f.pos[i] {
			f.passed[i] = true
			passed = append(passed, f)
		}
		done := true
		for _, p := range f.passed {
			done = done && p
		}
		if !done {
			keep = append(keep, f)
		}
	}
	s.fences = keep
	s.fenceMu.Unlock()
	for _, f := range passed {
		s.items <- item{fence: f}
	}
}

func (s *ifaceState) readLoop(i int, r *ringbuf.Reader) {
	for {
		b := s.pool.Get()
		if b == nil {
			return
		}
		err := r.ReadBatch(b)
		if b.Len() > 0 {
			s.items <- item{b: b}
		} else {
			s.pool.Put(b)
		}
		s.passFences(i, r)
		switch {
		case err == nil, errors.Is(err, ringbuf.ErrInterrupted), errors.Is(err, ringbuf.ErrBatchFull):
		case errors.Is(err, ringbuf.ErrClosed):
			return
		default:
			err = fmt.Errorf("read the ring of %s: %w", s.name, err)
			s.readErr.CompareAndSwap(nil, &err)
			s.endAll(err)
			return
		}
	}
}

// endAll tells every capture on the interface that it has to stop.
func (s *ifaceState) endAll(err error) {
	for _, m := range s.slots.Load() {
		if m != nil {
			m.c.signal(err)
		}
	}
}

func (s *ifaceState) dispatchLoop() {
	var dirty []*member
	for it := range s.items {
		if it.fence != nil {
			if it.fence.left.Add(-1) == 0 {
				close(it.fence.done)
			}
			continue
		}
		dirty = s.deliver(it.b, dirty)
		s.pool.Put(it.b)
		// Flush when idle, so that a quiet capture reaches its file (or
		// pipe) within a flush interval.
		if len(s.items) == 0 {
			for _, m := range dirty {
				m.dirty = false
				m.c.flush()
			}
			dirty = dirty[:0]
		}
	}
}

// Record header layout (struct rt_record in bpf/capture.h).
const (
	offMask    = 8
	offWireLen = 16
	offCapLen  = 20
	offDir     = 28
)

// deliver hands each record of b to the captures its mask names, cut to
// each one's snapshot length.
func (s *ifaceState) deliver(b *ringbuf.Batch, dirty []*member) []*member {
	tbl := s.slots.Load()
	var p pcapio.Packet
	for i := range b.Len() {
		rec := b.Record(i)
		if len(rec) < recHeader {
			s.endAll(fmt.Errorf("ring record of %d bytes is shorter than its header", len(rec)))
			return dirty
		}
		capLen := binary.LittleEndian.Uint32(rec[offCapLen:])
		if int(capLen) > len(rec)-recHeader {
			s.endAll(fmt.Errorf("ring record claims %d captured bytes but holds %d", capLen, len(rec)-recHeader))
			return dirty
		}
		mask := binary.LittleEndian.Uint64(rec[offMask:])
		p.Timestamp = s.e.clock.wall(binary.LittleEndian.Uint64(rec))
		p.WireLen = binary.LittleEndian.Uint32(rec[offWireLen:])
		p.Direction = pcapio.DirInbound
		if rec[offDir] == 1 {
			p.Direction = pcapio.DirOutbound
		}
		data := rec[recHeader : recHeader+capLen]
		for mask != 0 {
			slot := bits.TrailingZeros64(mask)
			mask &= mask - 1
			m := tbl[slot]
			if m == nil {
				s.unowned.Add(1)
				continue
			}
			p.Data = data[:min(capLen, m.c.spec.SnapLen)]
			if m.c.deliver(m.fileIndex, &p) && !m.dirty {
				m.dirty = true
				dirty = append(dirty, m)
			}
		}
	}
	return dirty
}

// tickLoop wakes the readers every FlushInterval (records below the wakeup
// threshold wait for it), re-samples the clock and watches the interface.
func (s *ifaceState) tickLoop() {
	t := time.NewTicker(s.e.opts.FlushInterval)
	defer t.Stop()
	var nl *netlink.Handle
	_ = inNetNS(s.e.opts.NetNS, func() (err error) {
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if nl != nil {
		defer nl.Close()
	}
	lastCheck := time.Now()
	for {
		select {
		case <-s.stopTick:
			return
		case now := <-t.C:
			for _, r := range s.readers {
				r.Interrupt()
			}
			if now.Sub(lastCheck) < time.Second {
				continue
			}
			lastCheck = now
			s.e.clock.sample()
			if nl == nil || s.gone.Load() {
				continue
			}
			if _, err := nl.LinkByIndex(s.index); err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
					s.gone.Store(true)
					s.e.opts.Logger.Info("interface went away", "interface", s.name)
					s.endAll(fmt.Errorf("%w: %s", ErrInterfaceGone, s.name))
				}
			}
		}
	}
}

// teardown detaches what is left, stops the goroutines and releases every
// kernel object, and removes a clsact qdisc ringtap added. Under e.mu;
// idempotent.
func (s *ifaceState) teardown() error {
	if s.torn {
		return nil
	}
	s.torn = true
	var errs []error
	for k, a := range s.hooks {
		if a == nil {
			continue
		}
		if err := inNetNS(s.e.opts.NetNS, a.link.Close); err != nil && !s.gone.Load() {
			errs = append(errs, fmt.Errorf("detach from %s: %w", s.name, err))
		}
		a.prog.Close()
		s.mapsMu.Lock()
		s.hooks[k] = nil
		s.mapsMu.Unlock()
		if k == kindXDP {
			errs = append(errs, s.restoreOffloads())
		}
	}
	if !s.gone.Load() {
		if err := inNetNS(s.e.opts.NetNS, s.cl.release); err != nil {
			errs = append(errs, err)
		}
	}
	close(s.stopTick)
	s.tickWG.Wait()
	s.pool.Close()
	s.closeReaders()
	s.readWG.Wait()
	close(s.items)
	s.dispWG.Wait()
	s.mapsMu.Lock()
	s.mapsClosed = true
	s.maps.close()
	s.mapsMu.Unlock()
	return errors.Join(errs...)
}

func (s *ifaceState) closeReaders() {
	for _, r := range s.readers {
		r.Close()
	}
}

// synchronizeRCU waits until every BPF program that was running when it
// was called has returned: membarrier(MEMBARRIER_CMD_GLOBAL) is
// synchronize_rcu(), and programs run inside RCU read-side sections. A
// program detached (generic XDP, clsact) or swapped out may still be
// running on another CPU until then, and may still reserve a record.
func synchronizeRCU() {
	const cmdGlobal = 1 // MEMBARRIER_CMD_GLOBAL
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, cmdGlobal, 0, 0); errno != 0 {
		// nohz_full kernels refuse it; programs run for microseconds.
		time.Sleep(50 * time.Millisecond)
	}
}
