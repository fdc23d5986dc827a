package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/gen"
	"github.com/ringtap/ringtap/pkg/caps"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/ringbuf"
)

// PacketWriter receives captured packets from the writer goroutine. A
// pcapio.Writer is one; rotation and compression wrap it.
type PacketWriter interface {
	WritePacket(p *pcapio.Packet) error
	Flush() error
}

// statsWriter is implemented by writers that record interface statistics
// (pcapng ISBs); Run calls it once at the end.
type statsWriter interface {
	WriteInterfaceStats(iface int, s pcapio.InterfaceStats) error
}

// iface is one captured interface.
type iface struct {
	name     string
	index    int
	linkType uint16
	hook     string // what was attached: xdp, xdp-generic, tcx, tc-clsact
	links    []io.Closer
	loopback bool
}

// Capture is one loaded and attached capture. Open creates it, Run drains
// it until the context ends, Close releases everything.
type Capture struct {
	cfg     Config
	ifaces  []*iface
	maps    *maps
	progs   []*ebpf.Program
	readers []*ringbuf.Reader
	clock   bootClock

	written   atomic.Uint64
	closeOnce sync.Once
	detachMu  sync.Mutex
	detached  bool
}

// Open loads the programs, creates the rings and attaches to every
// interface. On error nothing stays attached.
func Open(cfg Config) (_ *Capture, err error) {
	c := &Capture{}
	if c.cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	if missing, cerr := caps.MissingForCapture(); cerr == nil && len(missing) > 0 {
		return nil, fmt.Errorf("%w: capturing needs %s (run as root or grant them with setcap)", ErrPermission, strings.Join(missing, " and "))
	}
	k, err := ProbeKernel()
	if err != nil {
		return nil, permission(err)
	}
	if err := requireKernel(k, &c.cfg, cfg.Hook == HookAuto); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := c.resolveInterfaces(); err != nil {
		return nil, err
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count cpus: %w", err)
	}
	spec, err := gen.LoadCapture()
	if err != nil {
		return nil, fmt.Errorf("read capture programs: %w", err)
	}
	if c.maps, err = newMaps(spec, ncpu, c.cfg.RingSize, c.cfg.SharedRing); err != nil {
		return nil, permission(err)
	}
	for cpu, m := range c.maps.ringMaps {
		r, err := ringbuf.NewReader(m)
		if err != nil {
			return nil, fmt.Errorf("open ring reader for cpu %d: %w", cpu, err)
		}
		c.readers = append(c.readers, r)
	}
	if err := c.attachAll(spec); err != nil {
		return nil, permission(err)
	}
	c.clock.sample()
	return c, nil
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

func (c *Capture) resolveInterfaces() error {
	return inNetNS(c.cfg.NetNS, func() error {
		seen := map[string]bool{}
		for _, name := range c.cfg.Interfaces {
			if seen[name] {
				return fmt.Errorf("interface %s given twice", name)
			}
			seen[name] = true
			l, err := netlink.LinkByName(name)
			if err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) {
					return fmt.Errorf("%w: %s", ErrNoInterface, name)
				}
				return fmt.Errorf("look up interface %s: %w", name, err)
			}
			lt, err := linkTypeOf(l)
			if err != nil {
				return err
			}
			c.ifaces = append(c.ifaces, &iface{name: name, index: l.Attrs().Index, linkType: lt,
				loopback: l.Attrs().Flags&net.FlagLoopback != 0})
		}
		return nil
	})
}

// pcap link types.
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101
)

func linkTypeOf(l netlink.Link) (uint16, error) {
	switch l.Attrs().EncapType {
	case "ether", "loopback":
		return LinkTypeEthernet, nil
	case "none", "ipip", "sit", "tunnel6":
		// L3 devices (tun, wireguard): frames start at the IP header.
		return LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("interface %s has link encapsulation %q, which ringtap cannot capture yet", l.Attrs().Name, l.Attrs().EncapType)
}

func (c *Capture) attachAll(spec *ebpf.CollectionSpec) error {
	var names []string
	switch {
	case c.cfg.Hook == HookXDP:
		names = []string{progXDP}
	case c.cfg.Direction == DirIn:
		names = []string{progTCIngress}
	case c.cfg.Direction == DirOut:
		names = []string{progTCEgress}
	default:
		names = []string{progTCIngress, progTCEgress}
	}
	all := names
	for slot, ifc := range c.ifaces {
		names := all
		if ifc.loopback && c.cfg.Direction == DirInOut {
			// A packet on loopback leaves and enters the same device:
			// capture it once, as it enters, as libpcap does.
			names = []string{progTCIngress}
		}
		window, err := filterWindow(c.cfg.Filter, ifc.linkType)
		if err != nil {
			return err
		}
		progs, err := loadPrograms(spec, c.maps, progParams{
			slot: uint32(slot), snaplen: c.cfg.SnapLen, window: window,
			wakeup: uint32(c.cfg.WakeupBytes), monitor: c.cfg.MonitorPort, linkType: ifc.linkType,
		}, c.cfg.Filter, names)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifc.name, err)
		}
		for _, n := range names {
			c.progs = append(c.progs, progs[n])
		}
		err = inNetNS(c.cfg.NetNS, func() error {
			for _, n := range names {
				var (
					l    io.Closer
					hook string
					err  error
				)
				switch n {
				case progXDP:
					l, hook, err = attachXDP(progs[n], ifc.name, ifc.index, c.cfg.XDPMode)
				default:
					l, hook, err = attachTC(progs[n], ifc.name, ifc.index, n == progTCIngress, c.cfg.ForceClsact)
				}
				if err != nil {
					return err
				}
				ifc.links = append(ifc.links, l)
				ifc.hook = hook
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// HookName says how the programs were attached, e.g. "xdp", "xdp-generic",
// "tcx" or "tc-clsact".
func (c *Capture) HookName() string {
	if len(c.ifaces) == 0 {
		return c.cfg.Hook.String()
	}
	return c.ifaces[0].hook
}

// Interfaces lists the captured interfaces in file order.
func (c *Capture) Interfaces() []pcapio.Interface {
	out := make([]pcapio.Interface, len(c.ifaces))
	for i, ifc := range c.ifaces {
		out[i] = pcapio.Interface{Name: ifc.name, LinkType: ifc.linkType, SnapLen: c.cfg.SnapLen}
	}
	return out
}

// Config returns the effective configuration (defaults filled in).
func (c *Capture) Config() Config { return c.cfg }

// detach removes every program from its hook; records already in the rings
// stay there for the final drain. Safe to call more than once.
func (c *Capture) detach() error {
	c.detachMu.Lock()
	defer c.detachMu.Unlock()
	if c.detached {
		return nil
	}
	c.detached = true
	var errs []error
	for _, ifc := range c.ifaces {
		for _, l := range ifc.links {
			if err := l.Close(); err != nil {
				errs = append(errs, fmt.Errorf("detach from %s: %w", ifc.name, err))
			}
		}
		ifc.links = nil
	}
	return errors.Join(errs...)
}

// Close detaches and releases every kernel object. Idempotent.
func (c *Capture) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.detach()
		for _, r := range c.readers {
			r.Close()
		}
		for _, p := range c.progs {
			p.Close()
		}
		if c.maps != nil {
			c.maps.close()
		}
	})
	return err
}

// Stats reads the BPF counters.
func (c *Capture) Stats() (Stats, error) {
	st := Stats{Written: c.written.Load()}
	if c.maps == nil {
		return st, errors.New("capture is not open")
	}
	for slot, ifc := range c.ifaces {
		is := InterfaceStats{Name: ifc.name, Index: ifc.index}
		for dir, dst := range []*Counters{&is.In, &is.Out} {
			sum, err := c.maps.slotCounters(uint32(slot*2 + dir))
			if err != nil {
				return st, err
			}
			*dst = sum
		}
		st.Interfaces = append(st.Interfaces, is)
	}
	for _, r := range c.readers {
		st.Discarded += r.Discarded()
	}
	return st, nil
}

// Written is how many packets Run has handed to the writer so far.
func (c *Capture) Written() uint64 { return c.written.Load() }

// Record header layout (struct rt_record in bpf/capture.h).
const (
	offWireLen  = 8
	offCapLen   = 12
	offIfindex  = 16
	offDir      = 20
	batchArena  = 1 << 20
	batchRecs   = 16384
	batchesPerR = 4
)

// Run drains the rings into w until ctx is done, Count packets were
// written, an interface goes away (ErrInterfaceGone) or an error occurs.
// Before it returns, it detaches the programs, drains what the kernel wrote,
// writes interface statistics (pcapng) and flushes w. Run may be called
// once; Close must still be called afterwards.
func (c *Capture) Run(ctx context.Context, w PacketWriter) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	pool := ringbuf.NewPool(batchesPerR*len(c.readers), batchArena, batchRecs)
	batches := make(chan *ringbuf.Batch, batchesPerR*len(c.readers))
	var stopping atomic.Bool
	var readers sync.WaitGroup
	for cpu, r := range c.readers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if c.cfg.PinReaders {
				// The thread dies with the goroutine: the affinity
				// does not leak to other goroutines.
				runtime.LockOSThread()
				pinToCPU(cpu)
			}
			c.readLoop(r, pool, batches, &stopping, cancel)
		}()
	}

	var tick sync.WaitGroup
	tick.Add(1)
	go func() {
		defer tick.Done()
		c.tickLoop(ctx, cancel)
	}()

	// Writer: this goroutine. It stops taking batches when ctx ends; then
	// the producers are detached and everything left is drained below.
	werr := c.writeLoop(ctx, w, batches, pool, cancel)

	stopping.Store(true)
	derr := c.detach()
	for _, r := range c.readers {
		r.Interrupt()
	}
	go func() {
		readers.Wait()
		close(batches)
	}()
	// Keep consuming while the readers finish, so that none waits for a
	// batch; then drain what is left in the rings.
	for b := range batches {
		if werr == nil {
			werr = c.writeBatch(w, b)
		}
		pool.Put(b)
	}
	tick.Wait()
	if werr == nil {
		b := ringbuf.NewBatch(batchArena, batchRecs)
		for _, r := range c.readers {
			for werr == nil {
				b.Reset()
				n, err := r.ReadAvailable(b)
				if err != nil && !errors.Is(err, ringbuf.ErrClosed) {
					werr = fmt.Errorf("drain ring: %w", err)
				}
				werr = errors.Join(werr, c.writeBatch(w, b))
				if n == 0 || err != nil {
					break
				}
			}
		}
	}
	if errors.Is(werr, errCountReached) {
		werr = nil
	}
	if werr == nil {
		werr = c.writeStats(w)
	}
	if err := w.Flush(); err != nil && werr == nil {
		werr = fmt.Errorf("flush output: %w", err)
	}
	cause := context.Cause(ctx)
	switch {
	case werr != nil:
		return werr
	case derr != nil:
		return derr
	case errors.Is(cause, ErrInterfaceGone), errors.Is(cause, errReader):
		return cause
	}
	return nil
}

var (
	errCountReached = errors.New("packet count reached")
	errReader       = errors.New("ring reader")
)

func (c *Capture) readLoop(r *ringbuf.Reader, pool *ringbuf.Pool, out chan<- *ringbuf.Batch, stopping *atomic.Bool, cancel context.CancelCauseFunc) {
	for !stopping.Load() {
		b := pool.Get()
		if b == nil || stopping.Load() {
			pool.Put(b)
			return
		}
		err := r.ReadBatch(b)
		if b.Len() > 0 {
			out <- b
		} else {
			pool.Put(b)
		}
		switch {
		case err == nil, errors.Is(err, ringbuf.ErrInterrupted):
		case errors.Is(err, ringbuf.ErrClosed):
			return
		default:
			cancel(fmt.Errorf("%w: %w", errReader, err))
			return
		}
	}
}

// tickLoop wakes the readers every FlushInterval (records below the wakeup
// threshold wait for it), re-samples the clock and watches the interfaces.
func (c *Capture) tickLoop(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	var nl *netlink.Handle
	_ = inNetNS(c.cfg.NetNS, func() (err error) {
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if nl != nil {
		defer nl.Close()
	}
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, r := range c.readers {
				r.Interrupt()
			}
			if now.Sub(lastCheck) < time.Second {
				continue
			}
			lastCheck = now
			c.clock.sample()
			if nl == nil {
				continue
			}
			for _, ifc := range c.ifaces {
				if _, err := nl.LinkByIndex(ifc.index); err != nil {
					var nf netlink.LinkNotFoundError
					if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
						cancel(fmt.Errorf("%w: %s", ErrInterfaceGone, ifc.name))
						return
					}
				}
			}
		}
	}
}

func (c *Capture) writeLoop(ctx context.Context, w PacketWriter, batches <-chan *ringbuf.Batch, pool *ringbuf.Pool, cancel context.CancelCauseFunc) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-batches:
			err := c.writeBatch(w, b)
			pool.Put(b)
			if err != nil {
				cancel(err)
				return err
			}
			// Flush when idle so that a quiet capture reaches the file
			// (or the pipe) within a flush interval.
			if len(batches) == 0 {
				if err := w.Flush(); err != nil {
					return fmt.Errorf("flush output: %w", err)
				}
			}
		}
	}
}

func (c *Capture) writeBatch(w PacketWriter, b *ringbuf.Batch) error {
	var p pcapio.Packet
	for i := range b.Len() {
		if n := c.cfg.Count; n > 0 && c.written.Load() >= n {
			return errCountReached
		}
		rec := b.Record(i)
		if len(rec) < recHeader {
			return fmt.Errorf("ring record of %d bytes is shorter than its header", len(rec))
		}
		capLen := binary.LittleEndian.Uint32(rec[offCapLen:])
		if int(capLen) > len(rec)-recHeader {
			return fmt.Errorf("ring record claims %d captured bytes but holds %d", capLen, len(rec)-recHeader)
		}
		p.Timestamp = c.clock.wall(binary.LittleEndian.Uint64(rec))
		p.WireLen = binary.LittleEndian.Uint32(rec[offWireLen:])
		p.Interface = c.ifaceIndex(binary.LittleEndian.Uint32(rec[offIfindex:]))
		p.Direction = pcapio.DirInbound
		if rec[offDir] == 1 {
			p.Direction = pcapio.DirOutbound
		}
		p.Data = rec[recHeader : recHeader+capLen]
		if err := w.WritePacket(&p); err != nil {
			return fmt.Errorf("write packet: %w", err)
		}
		c.written.Add(1)
	}
	if n := c.cfg.Count; n > 0 && c.written.Load() >= n {
		return errCountReached
	}
	return nil
}

func (c *Capture) ifaceIndex(ifindex uint32) int {
	for i, ifc := range c.ifaces {
		if uint32(ifc.index) == ifindex {
			return i
		}
	}
	return 0
}

func (c *Capture) writeStats(w PacketWriter) error {
	sw, ok := w.(statsWriter)
	if !ok {
		return nil
	}
	st, err := c.Stats()
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	for i, is := range st.Interfaces {
		t := is.Total()
		if err := sw.WriteInterfaceStats(i, pcapio.InterfaceStats{Timestamp: now, Received: t.Seen, Dropped: t.Lost(), Accepted: t.Matched}); err != nil {
			return fmt.Errorf("write interface statistics: %w", err)
		}
	}
	return nil
}
