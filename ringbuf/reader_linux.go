package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

var (
	// ErrClosed is returned by reads on a closed Reader, and by a ReadBatch
	// that Close unblocked.
	ErrClosed = errors.New("ringbuf: reader closed")
	// ErrInterrupted is returned by ReadBatch when Interrupt was called
	// while it waited, or since the last time it waited, and no record
	// was available.
	ErrInterrupted = errors.New("ringbuf: read interrupted")
	// ErrBatchFull is returned when the batch passed in has no room for
	// the next record (record limit reached, or the record does not fit in
	// the rest of a non-empty arena): nothing was appended. Reset the batch
	// or pass another one.
	ErrBatchFull = errors.New("ringbuf: batch full")
	// ErrCorrupt is returned if a record header points outside the data the
	// producer published; it cannot happen with a kernel producer.
	ErrCorrupt = errors.New("ringbuf: corrupt record header")
)

// Record header bits and size, from the kernel's uapi/linux/bpf.h.
const (
	busyBit    = 1 << 31 // BPF_RINGBUF_BUSY_BIT
	discardBit = 1 << 30 // BPF_RINGBUF_DISCARD_BIT
	hdrSize    = 8       // BPF_RINGBUF_HDR_SZ
)

// evMap and evWake tag the two fds in the epoll set.
const (
	evMap  = 0
	evWake = 1
)

// wakeValue is written to the eventfd; a package-level array so that
// writing it does not allocate.
var wakeValue = [8]byte{1}

// Reader drains one BPF_MAP_TYPE_RINGBUF map. ReadBatch and ReadAvailable
// are meant for one goroutine (calls are serialized); Interrupt,
// AvailableBytes, Discarded, Size and Close may be called from any goroutine.
type Reader struct {
	// readMu serializes ReadBatch/ReadAvailable: there is one consumer
	// position.
	readMu sync.Mutex
	// mu is held for reading by every method that touches the mappings or
	// the fds, for a whole call (never per record), and for writing by
	// Close while it releases them.
	mu        sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	fd   int // our dup of the map fd
	epfd int
	evfd int

	consPage []byte // consumer page, read-write
	prodMap  []byte // producer page + data area mapped twice, read-only

	consPos *uintptr // in consPage; written only by us
	prodPos *uintptr // in prodMap
	data    []byte   // 2*size bytes: the data area twice in a row
	mask    uintptr
	// releaseEvery is how many consumed bytes may pile up in one drain
	// before the consumer position is published to the producer.
	releaseEvery uintptr

	discarded atomic.Uint64
	events    [2]unix.EpollEvent
	evBuf     [8]byte
}

// NewReader maps m, which must be a BPF_MAP_TYPE_RINGBUF. The Reader does not
// own m: it works on a duplicate of m's fd, so m may be closed at any time,
// and Close does not close m.
func NewReader(m *ebpf.Map) (_ *Reader, err error) {
	if m == nil {
		return nil, errors.New("ringbuf: nil map")
	}
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("ringbuf: map %v is a %v, not a RingBuf", m, m.Type())
	}
	page := os.Getpagesize()
	size := int(m.MaxEntries())
	if size <= 0 || size&(size-1) != 0 || size%page != 0 {
		return nil, fmt.Errorf("ringbuf: map size %d is not a power-of-two multiple of the page size", size)
	}

	r := &Reader{fd: -1, epfd: -1, evfd: -1}
	defer func() {
		if err != nil {
			r.release()
		}
	}()
	if r.fd, err = unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("ringbuf: dup map fd: %w", err)
	}
	if r.consPage, err = unix.Mmap(r.fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("ringbuf: mmap consumer page: %w", err)
	}
	if r.prodMap, err = unix.Mmap(r.fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("ringbuf: mmap producer page and data: %w", err)
	}
	r.consPos = (*uintptr)(unsafe.Pointer(&r.consPage[0]))
	r.prodPos = (*uintptr)(unsafe.Pointer(&r.prodMap[0]))
	r.data = r.prodMap[page:]
	r.mask = uintptr(size - 1)
	r.releaseEvery = uintptr(min(size/4, 1<<20))

	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("ringbuf: epoll_create: %w", err)
	}
	if r.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("ringbuf: eventfd: %w", err)
	}
	// Level-triggered: once the map fd was reported readable, each wait
	// polls it again, so records published without a wakeup
	// (BPF_RB_NO_WAKEUP) are seen at the next wait.
	for _, x := range []struct{ fd, tag int }{{r.fd, evMap}, {r.evfd, evWake}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(x.tag)}
		if err = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, x.fd, &ev); err != nil {
			return nil, fmt.Errorf("ringbuf: epoll_ctl: %w", err)
		}
	}
	return r, nil
}

// Size returns the ring's data size in bytes (the map's max_entries).
func (r *Reader) Size() int { return int(r.mask) + 1 }

// Discarded returns how many records the producer discarded
// (bpf_ringbuf_discard) that the reader skipped.
func (r *Reader) Discarded() uint64 { return r.discarded.Load() }

// AvailableBytes returns producer position - consumer position: the bytes
// (headers and padding included) waiting in the ring. It is 0 after Close.
func (r *Reader) AvailableBytes() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed.Load() {
		return 0
	}
	return uint64(atomic.LoadUintptr(r.prodPos) - atomic.LoadUintptr(r.consPos))
}

// ProducerPos is the producer's position: every record reserved so far
// (committed or not) ends at or before it.
func (r *Reader) ProducerPos() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed.Load() {
		return 0
	}
	return uint64(atomic.LoadUintptr(r.prodPos))
}

// ConsumerPos is the consumer's position: every record before it has been
// read (or skipped, if discarded).
func (r *Reader) ConsumerPos() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed.Load() {
		return 0
	}
	return uint64(atomic.LoadUintptr(r.consPos))
}

// Busy-head backoff: a record reserved but not committed is at most
// microseconds from its commit, but epoll reports the ring readable all
// along, so waiting there would spin.
const (
	busyBackoffMin = 2 * time.Microsecond
	busyBackoffMax = time.Millisecond
)

// ReadBatch appends to b every record available now, until b's arena or
// record limit is reached (the rest stay in the ring for the next call).
// Discarded records are skipped and counted (Discarded).
//
// If no record is available, ReadBatch blocks until one is, or until Close
// (ErrClosed) or Interrupt (ErrInterrupted). It never times out. An
// Interrupt is answered by exactly one ErrInterrupted, returned by the first
// call that finds the ring empty: if records are there (e.g. published with
// BPF_RB_NO_WAKEUP, which wakes nobody), they are returned first with a nil
// error and the next call returns ErrInterrupted at once if the ring is then
// empty. So a caller that Interrupts to stop sees every record before
// ErrInterrupted.
//
// If b has no room for even the next record, ReadBatch returns ErrBatchFull
// at once. A record larger than b's whole arena is still read if b is empty:
// the arena grows to fit it (see Batch.Append).
func (r *Reader) ReadBatch(b *Batch) error {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	r.mu.RLock()
	defer r.mu.RUnlock()
	backoff := busyBackoffMin
	for {
		if r.closed.Load() {
			return ErrClosed
		}
		n, full, err := r.drain(b)
		switch {
		case err != nil:
			return err
		case n > 0:
			return nil
		case full:
			return ErrBatchFull
		}
		if r.busyHead() {
			// Back off instead of spinning in epoll; an Interrupt is
			// still answered.
			if _, err := unix.Read(r.evfd, r.evBuf[:]); err == nil {
				return ErrInterrupted
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, busyBackoffMax)
			continue
		}
		backoff = busyBackoffMin
		interrupted, err := r.wait()
		if err != nil {
			return err
		}
		if !interrupted {
			continue
		}
		if r.closed.Load() {
			return ErrClosed
		}
		// Records published without a wakeup come first; the interrupt
		// stays pending until a call finds the ring empty.
		n, full, err = r.drain(b)
		switch {
		case err != nil:
			return err
		case n > 0:
			return nil
		case full:
			return ErrBatchFull
		}
		// Consume the interrupt (Interrupts up to here count as one).
		_, _ = unix.Read(r.evfd, r.evBuf[:])
		return ErrInterrupted
	}
}

// ReadAvailable appends to b the records available now, like ReadBatch, but
// never blocks; it returns how many it appended (0 if the ring is empty).
// Call it until it returns 0 to empty the ring, e.g. after the producer is
// detached. It returns ErrBatchFull if b has no room for the next record.
func (r *Reader) ReadAvailable(b *Batch) (int, error) {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed.Load() {
		return 0, ErrClosed
	}
	n, full, err := r.drain(b)
	if err == nil && n == 0 && full {
		err = ErrBatchFull
	}
	return n, err
}

// drain copies the available records into b. It returns the number appended
// and whether it stopped because b had no room. It stops early at a record
// the producer has reserved but not committed yet (busy bit).
//
// The consumer position is published after the records are copied, at the
// end and every releaseEvery bytes, and the producer position is loaded
// again after each publication, so that a record committed while we were
// copying (whose commit saw our old consumer position and skipped the
// wakeup) is read now rather than left behind a sleeping reader.
//
// The caller holds readMu and mu (read).
func (r *Reader) drain(b *Batch) (n int, full bool, err error) {
	data, mask := r.data, r.mask
	cons := atomic.LoadUintptr(r.consPos)
	published := cons
	var discarded uint64
	for {
		prod := atomic.LoadUintptr(r.prodPos)
		if prod == cons {
			break
		}
		stop := false
		for cons != prod {
			off := cons & mask
			// Acquire: pairs with the producer's xchg of the length
			// when it commits; the data written before is visible.
			hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[off])))
			if hdr&busyBit != 0 {
				stop = true
				break
			}
			length := uintptr(hdr &^ (busyBit | discardBit))
			stride := (length + hdrSize + 7) &^ 7
			if stride > prod-cons {
				atomic.StoreUintptr(r.consPos, cons)
				r.discarded.Add(discarded)
				return n, false, fmt.Errorf("%w: length %d at position %d, %d bytes published", ErrCorrupt, length, cons, prod-cons)
			}
			if hdr&discardBit == 0 {
				// The data area is mapped twice, so a record that
				// wraps around the end is contiguous here.
				src := data[off+hdrSize : off+hdrSize+length]
				if dst := b.reserve(len(src)); dst != nil {
					copy(dst, src)
				} else {
					full, stop = true, true
					break
				}
				n++
			} else {
				discarded++
			}
			cons += stride
			if cons-published >= r.releaseEvery {
				atomic.StoreUintptr(r.consPos, cons)
				published = cons
			}
		}
		if cons != published {
			atomic.StoreUintptr(r.consPos, cons)
			published = cons
		}
		if stop {
			break
		}
	}
	if discarded != 0 {
		r.discarded.Add(discarded)
	}
	return n, full, nil
}

// busyHead says whether the next record is reserved but not committed.
// The caller holds mu (read).
func (r *Reader) busyHead() bool {
	cons := atomic.LoadUintptr(r.consPos)
	if atomic.LoadUintptr(r.prodPos) == cons {
		return false
	}
	hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[cons&r.mask])))
	return hdr&busyBit != 0
}

// wait blocks in epoll_wait until the map fd is readable or the eventfd is
// signalled; interrupted reports the latter (the eventfd stays signalled).
func (r *Reader) wait() (interrupted bool, err error) {
	for {
		nev, err := unix.EpollWait(r.epfd, r.events[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("ringbuf: epoll_wait: %w", err)
		}
		for i := range nev {
			if r.events[i].Fd == evWake {
				interrupted = true
			}
		}
		return interrupted, nil
	}
}

// Interrupt wakes a blocked ReadBatch: it returns the records that arrived
// without a wakeup if there are any, else ErrInterrupted. If no ReadBatch is
// blocked, the next one that finds the ring empty returns ErrInterrupted
// instead of blocking. Interrupts not yet answered count as one. Safe from
// any goroutine; a no-op after Close.
func (r *Reader) Interrupt() {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed.Load() {
		return
	}
	_, _ = unix.Write(r.evfd, wakeValue[:])
}

// Close unblocks a blocked ReadBatch at once (it returns ErrClosed), waits
// for it to leave, then unmaps the ring and closes the Reader's fds. Later
// reads return ErrClosed, AvailableBytes returns 0 and Interrupt does
// nothing. Close is idempotent and safe from any goroutine. It does not close
// the map.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		// The eventfd is only closed below, under the write lock, so
		// writing it here is safe.
		_, _ = unix.Write(r.evfd, wakeValue[:])
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closeErr = r.release()
	})
	return r.closeErr
}

// release unmaps and closes whatever NewReader set up.
func (r *Reader) release() error {
	var errs []error
	if r.consPage != nil {
		errs = append(errs, unix.Munmap(r.consPage))
	}
	if r.prodMap != nil {
		errs = append(errs, unix.Munmap(r.prodMap))
	}
	r.consPage, r.prodMap, r.data, r.consPos, r.prodPos = nil, nil, nil, nil, nil
	for _, fd := range []*int{&r.epfd, &r.evfd, &r.fd} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ringbuf: close: %w", err)
	}
	return nil
}
