//go:build linux

package ringbuf

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// shadowRing lets a test mark a record reserved but not committed. The
// kernel never lets user space write a ring's data pages (the ring's mmap
// refuses VM_WRITE past the consumer page and clears VM_MAYWRITE), and a
// BPF program cannot hold a reservation past its own return, so the test
// points the Reader's view of the data area at a writable copy of the
// kernel's. The records, their headers and the producer position are the
// kernel's; reads still publish the consumer position to the kernel. Make
// it while no read runs; records produced afterwards are only seen after
// the next shadowRing.
type shadowRing struct {
	r    *Reader
	data []byte
}

func shadow(r *Reader) *shadowRing {
	data := make([]byte, len(r.data))
	copy(data, r.data)
	r.data = data
	return &shadowRing{r: r, data: data}
}

// header returns the header word at ring position pos.
func (s *shadowRing) header(pos uint64) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.data[uintptr(pos)&s.r.mask])))
}

// setHeader stores the header word at ring position pos, in both copies
// of the data area (it is mapped twice in a row).
func (s *shadowRing) setHeader(pos uint64, hdr uint32) {
	off := uintptr(pos) & s.r.mask
	for _, o := range []uintptr{off, off + s.r.mask + 1} {
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&s.data[o])), hdr)
	}
}

// threadUsage is the CPU time the calling thread has used and how often
// it gave up its CPU to wait (voluntary context switches).
func threadUsage(t *testing.T) (cpu time.Duration, waits int64) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		t.Errorf("read the thread's CPU clock: %v", err)
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Errorf("getrusage(RUSAGE_THREAD): %v", err)
	}
	return time.Duration(ts.Nano()), ru.Nvcsw
}

type timedRead struct {
	err      error
	cpu      time.Duration // CPU time of the reading thread during the call
	waits    int64         // its voluntary context switches during the call
	returned time.Time
}

// timedReadBatch runs ReadBatch(b) on a thread of its own and reports
// what that thread used in the call.
func timedReadBatch(t *testing.T, r *Reader, b *Batch) <-chan timedRead {
	done := make(chan timedRead, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu0, waits0 := threadUsage(t)
		err := r.ReadBatch(b)
		cpu1, waits1 := threadUsage(t)
		done <- timedRead{err: err, cpu: cpu1 - cpu0, waits: waits1 - waits0, returned: time.Now()}
	}()
	return done
}

func awaitTimed(t *testing.T, done <-chan timedRead, within time.Duration) timedRead {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(within):
		t.Fatalf("ReadBatch still blocked after %v", within)
		return timedRead{}
	}
}

// TestBusyHead: a record reserved but not committed (busy bit set) ends a
// drain, records committed after it are not returned before it, and a
// ReadBatch facing it backs off (2 µs doubling to 1 ms) instead of
// spinning on the ring that epoll reports readable: it still answers
// Interrupt and Close, and returns the record once it is committed.
func TestBusyHead(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	sizes := []int{24, 40, 8, 16}
	e.setSizes(0, sizes)
	r, err := NewReader(e.ring)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runOnce(t, prog, 3)
	sh := shadow(r)
	busyPos := uint64(stride(sizes[0]))
	hdr := sh.header(busyPos)
	if hdr&^discardBit != uint32(sizes[1]) {
		t.Fatalf("header of record 1 at position %d is %#x, want length %d", busyPos, hdr, sizes[1])
	}
	sh.setHeader(busyPos, hdr|busyBit)

	// The drain stops at the busy record: record 0 only.
	b := NewBatch(4096, 0)
	if err := r.ReadBatch(b); err != nil || b.Len() != 1 {
		t.Fatalf("ReadBatch = %v with %d records, want record 0 alone", err, b.Len())
	}
	checkRecord(t, b.Record(0), 0, sizes[0])
	if got := r.ConsumerPos(); got != busyPos {
		t.Fatalf("consumer position %d after the drain, want %d (the busy record)", got, busyPos)
	}
	b.Reset()
	if n, err := r.ReadAvailable(b); n != 0 || err != nil {
		t.Fatalf("ReadAvailable with a busy head = %d, %v; want 0, nil (records behind it wait)", n, err)
	}

	// A busy head: ReadBatch waits, sleeping 2 µs doubling to 1 ms
	// between looks, then returns the record and those behind it once it
	// is committed.
	const window = 300 * time.Millisecond
	done := timedReadBatch(t, r, b)
	time.Sleep(window)
	select {
	case res := <-done:
		t.Fatalf("ReadBatch returned %v with %d records while the head was busy", res.err, b.Len())
	default:
	}
	committed := time.Now()
	sh.setHeader(busyPos, hdr)
	res := awaitTimed(t, done, 2*time.Second)
	if res.err != nil || b.Len() != 2 {
		t.Fatalf("ReadBatch after the commit = %v with %d records, want records 1 and 2", res.err, b.Len())
	}
	checkRecord(t, b.Record(0), 1, sizes[1])
	checkRecord(t, b.Record(1), 2, sizes[2])
	if got := r.AvailableBytes(); got != 0 {
		t.Errorf("AvailableBytes = %d after reading everything", got)
	}
	t.Logf("busy head for %v: %v of CPU, %d sleeps, returned %v after the commit", window, res.cpu, res.waits, res.returned.Sub(committed))
	// Spinning takes the whole window of CPU (at least half on a loaded
	// machine); backing off, a few milliseconds.
	if res.cpu > window/4 {
		t.Errorf("ReadBatch used %v of CPU in %v facing a busy record: it spins", res.cpu, window)
	}
	// About one sleep per millisecond once the backoff reaches its cap:
	// fewer means sleeps far longer than 1 ms (an uncapped doubling
	// sleeps 17 times in 300 ms), many more means it never grows.
	if lo, hi := int64(window/(10*time.Millisecond)), int64(4*window/time.Millisecond); res.waits < lo || res.waits > hi {
		t.Errorf("ReadBatch slept %d times in %v facing a busy record, want %d to %d (backoff to 1 ms)", res.waits, window, lo, hi)
	}
	if d := res.returned.Sub(committed); d > 100*time.Millisecond {
		t.Errorf("ReadBatch took %v to return a record after its commit", d)
	}

	// Interrupt and Close are answered while the head is busy.
	runOnce(t, prog, 1)
	sh = shadow(r)
	pos := r.ConsumerPos()
	sh.setHeader(pos, sh.header(pos)|busyBit)
	b.Reset()
	done = timedReadBatch(t, r, b)
	time.Sleep(20 * time.Millisecond)
	interrupted := time.Now()
	r.Interrupt()
	res = awaitTimed(t, done, 2*time.Second)
	if !errors.Is(res.err, ErrInterrupted) || b.Len() != 0 {
		t.Fatalf("interrupted ReadBatch facing a busy head = %v with %d records, want ErrInterrupted and none", res.err, b.Len())
	}
	if d := res.returned.Sub(interrupted); d > 100*time.Millisecond {
		t.Errorf("ReadBatch took %v to answer Interrupt with a busy head", d)
	}
	done = timedReadBatch(t, r, b)
	time.Sleep(20 * time.Millisecond)
	closed := time.Now()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res = awaitTimed(t, done, 2*time.Second)
	if !errors.Is(res.err, ErrClosed) {
		t.Fatalf("ReadBatch facing a busy head = %v after Close, want ErrClosed", res.err)
	}
	if d := res.returned.Sub(closed); d > 100*time.Millisecond {
		t.Errorf("Close took %v to unblock ReadBatch facing a busy head", d)
	}
}
