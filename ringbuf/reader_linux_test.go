//go:build linux

package ringbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"go.uber.org/goleak"
)

const ringSize = 4 * 4096

func newReader(t *testing.T, m *ebpf.Map) *Reader {
	t.Helper()
	r, err := NewReader(m)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// checkRecord fails unless rec is what the output program wrote for seq.
func checkRecord(t *testing.T, rec []byte, seq, size int) {
	t.Helper()
	if want := wantRecord(uint32(seq), size); !bytes.Equal(rec, want) {
		t.Fatalf("record seq %d: got %d bytes %x..., want %d bytes %x...", seq, len(rec), head(rec), len(want), head(want))
	}
}

func head(p []byte) []byte { return p[:min(len(p), 16)] }

// blockedRead starts ReadBatch(b) in a goroutine, checks that it is still
// blocked after a while and returns the channel its result arrives on.
func blockedRead(t *testing.T, r *Reader, b *Batch) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.ReadBatch(b) }()
	select {
	case err := <-done:
		t.Fatalf("ReadBatch on an empty ring returned %v (%d records) instead of blocking", err, b.Len())
	case <-time.After(100 * time.Millisecond):
	}
	return done
}

func await(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("ReadBatch still blocked after %v", within)
		return nil
	}
}

func TestNewReaderRejects(t *testing.T) {
	requireBPF(t)
	if _, err := NewReader(nil); err == nil {
		t.Error("NewReader(nil) succeeded")
	}
	arr, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	if r, err := NewReader(arr); err == nil {
		r.Close()
		t.Error("NewReader(array map) succeeded")
	}
}

// TestVariedSizesAndWrap writes records of many sizes (0 to 4096 bytes)
// round after round, so that records wrap around the end of the ring, and
// checks every record's content and order.
func TestVariedSizesAndWrap(t *testing.T) {
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	r := newReader(t, e.ring)
	if r.Size() != ringSize {
		t.Fatalf("Size() = %d, want %d", r.Size(), ringSize)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4095, 4096, 0, 0, 3}
	for len(sizes) < 800 {
		if rng.IntN(4) == 0 {
			sizes = append(sizes, rng.IntN(dataValueSize+1))
		} else {
			sizes = append(sizes, rng.IntN(200))
		}
	}
	e.setSizes(0, sizes)

	b := NewBatch(2*ringSize, ringSize/8)
	pos, wraps, rounds := 0, 0, 0
	for seq := 0; seq < len(sizes); rounds++ {
		// Produce as many records as fit in the ring.
		k, used := 0, 0
		for seq+k < len(sizes) && used+stride(sizes[seq+k]) < ringSize {
			used += stride(sizes[seq+k])
			k++
		}
		runOnce(t, prog, k)
		if got := r.AvailableBytes(); got != uint64(used) {
			t.Fatalf("round %d: AvailableBytes() = %d, want %d", rounds, got, used)
		}
		b.Reset()
		if err := r.ReadBatch(b); err != nil {
			t.Fatalf("round %d: ReadBatch: %v", rounds, err)
		}
		if b.Len() != k {
			t.Fatalf("round %d: got %d records, want %d", rounds, b.Len(), k)
		}
		bytes := 0
		for i := range k {
			checkRecord(t, b.Record(i), seq+i, sizes[seq+i])
			bytes += sizes[seq+i]
			st := stride(sizes[seq+i])
			if pos%ringSize+st > ringSize {
				wraps++
			}
			pos += st
		}
		if b.Bytes() != bytes {
			t.Fatalf("Bytes() = %d, want %d", b.Bytes(), bytes)
		}
		seq += k
	}
	if got := r.AvailableBytes(); got != 0 {
		t.Errorf("AvailableBytes() = %d after draining", got)
	}
	if seq, fails := e.counters(); seq != uint64(len(sizes)) || fails != 0 {
		t.Errorf("producer ran %d times with %d failures, want %d and 0", seq, fails, len(sizes))
	}
	if wraps < 3 {
		t.Errorf("only %d records wrapped around the end of the ring in %d rounds", wraps, rounds)
	}
	t.Logf("%d records in %d rounds, %d wrapped around the end", len(sizes), rounds, wraps)
}

// TestDiscard checks that discarded records are skipped and counted,
// including a ring holding only discarded records.
func TestDiscard(t *testing.T) {
	e := newTestEnv(t, ringSize)
	prog := e.discardProg()
	r := newReader(t, e.ring)

	const perRound = 300 // 300 * 48 bytes fit in the ring
	b := NewBatch(ringSize, 0)
	next := uint64(1) // seq 0 is discarded
	for round := range 5 {
		runOnce(t, prog, perRound)
		b.Reset()
		if err := r.ReadBatch(b); err != nil {
			t.Fatal(err)
		}
		if b.Len() != perRound*2/3 {
			t.Fatalf("round %d: got %d records, want %d", round, b.Len(), perRound*2/3)
		}
		for i := range b.Len() {
			if want := wantDiscardRecord(next); !bytes.Equal(b.Record(i), want) {
				t.Fatalf("round %d record %d: got %x, want %x", round, i, b.Record(i), want)
			}
			next++
			if next%3 == 0 {
				next++
			}
		}
	}
	if got, want := r.Discarded(), uint64(5*perRound/3); got != want {
		t.Errorf("Discarded() = %d, want %d", got, want)
	}

	// Only a discarded record in the ring: nothing to return, and the
	// space is given back.
	runOnce(t, prog, 1) // seq 1500
	if r.AvailableBytes() == 0 {
		t.Fatal("discarded record not in the ring")
	}
	b.Reset()
	if n, err := r.ReadAvailable(b); n != 0 || err != nil {
		t.Fatalf("ReadAvailable = %d, %v; want 0, nil", n, err)
	}
	if got := r.AvailableBytes(); got != 0 {
		t.Errorf("AvailableBytes() = %d after skipping a discarded record", got)
	}
	if got, want := r.Discarded(), uint64(5*perRound/3+1); got != want {
		t.Errorf("Discarded() = %d, want %d", got, want)
	}
	if _, fails := e.counters(); fails != 0 {
		t.Errorf("%d reservations failed", fails)
	}
}

// TestRingFull fills the ring past capacity without reading: the reader gets
// exactly the records that fit, and the producer can write again after.
func TestRingFull(t *testing.T) {
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	r := newReader(t, e.ring)
	sizes := make([]int, 40)
	for i := range sizes {
		sizes[i] = 1000
	}
	e.setSizes(0, sizes)

	const fit = ringSize / 1008 // 16 records of stride 1008
	runOnce(t, prog, 30)
	if seq, fails := e.counters(); seq != 30 || fails != 30-fit {
		t.Fatalf("producer: %d runs, %d failures; want 30 and %d", seq, fails, 30-fit)
	}
	b := NewBatch(64<<10, 0)
	n, err := r.ReadAvailable(b)
	if err != nil || n != fit {
		t.Fatalf("ReadAvailable = %d, %v; want %d, nil", n, err, fit)
	}
	for i := range n {
		checkRecord(t, b.Record(i), i, 1000)
	}
	runOnce(t, prog, 10)
	b.Reset()
	if err := r.ReadBatch(b); err != nil || b.Len() != 10 {
		t.Fatalf("ReadBatch = %v with %d records; want 10", err, b.Len())
	}
	for i := range 10 {
		checkRecord(t, b.Record(i), 30+i, 1000)
	}
}

// TestBatchLimits checks that reads stop at the batch's record and arena
// limits, leave the rest in the ring, and grow an empty batch's arena for a
// record larger than it.
func TestBatchLimits(t *testing.T) {
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	r := newReader(t, e.ring)
	sizes := make([]int, 100)
	for i := range sizes {
		sizes[i] = 100
	}
	e.setSizes(0, append(sizes, 3000, 3000))
	runOnce(t, prog, 100)

	seq := 0
	check := func(b *Batch, want int) {
		t.Helper()
		if b.Len() != want {
			t.Fatalf("got %d records, want %d", b.Len(), want)
		}
		for i := range b.Len() {
			checkRecord(t, b.Record(i), seq, sizes[seq])
			seq++
		}
	}

	// Record limit.
	b := NewBatch(64<<10, 5)
	if err := r.ReadBatch(b); err != nil {
		t.Fatal(err)
	}
	check(b, 5)
	if err := r.ReadBatch(b); !errors.Is(err, ErrBatchFull) {
		t.Fatalf("ReadBatch on a full batch = %v, want ErrBatchFull", err)
	}
	if n, err := r.ReadAvailable(b); n != 0 || !errors.Is(err, ErrBatchFull) {
		t.Fatalf("ReadAvailable on a full batch = %d, %v; want 0, ErrBatchFull", n, err)
	}

	// Arena limit: 100-byte records take 104 bytes (8-aligned), so 3 fit
	// in 350.
	b = NewBatch(350, 100)
	if err := r.ReadBatch(b); err != nil {
		t.Fatal(err)
	}
	check(b, 3)
	for i := range b.Len() {
		if addr := uintptr(unsafePointer(b.Record(i))); addr%8 != 0 {
			t.Errorf("record %d at %#x is not 8-byte aligned", i, addr)
		}
	}
	if err := r.ReadBatch(b); !errors.Is(err, ErrBatchFull) {
		t.Fatalf("ReadBatch on a full arena = %v, want ErrBatchFull", err)
	}

	// The rest is still there, in order.
	b = NewBatch(64<<10, 0)
	if err := r.ReadBatch(b); err != nil {
		t.Fatal(err)
	}
	check(b, 92)

	// A record larger than the arena: an empty batch grows...
	runOnce(t, prog, 1)
	small := NewBatch(16, 4)
	if err := r.ReadBatch(small); err != nil {
		t.Fatal(err)
	}
	if small.Len() != 1 || small.Cap() < 3000 {
		t.Fatalf("got %d records, arena %d bytes; want 1 and >= 3000", small.Len(), small.Cap())
	}
	checkRecord(t, small.Record(0), 100, 3000)
	small.Reset()
	if small.Cap() < 3000 {
		t.Errorf("Reset shrank the arena to %d", small.Cap())
	}
	// ...a non-empty one reports full and keeps the record in the ring.
	small = NewBatch(16, 4)
	small.Append([]byte("x"))
	runOnce(t, prog, 1)
	if err := r.ReadBatch(small); !errors.Is(err, ErrBatchFull) {
		t.Fatalf("ReadBatch = %v, want ErrBatchFull", err)
	}
	small.Reset()
	if err := r.ReadBatch(small); err != nil || small.Len() != 1 {
		t.Fatalf("ReadBatch = %v with %d records, want 1", err, small.Len())
	}
	checkRecord(t, small.Record(0), 101, 3000)
}

func TestCloseUnblocksRead(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEnv(t, ringSize)
	r, err := NewReader(e.ring)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch(4096, 0)
	done := blockedRead(t, r, b)
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	took := time.Since(start)
	// Close unmaps the ring only once ReadBatch has let go of it (the
	// reader's lock orders them; were it not so, ReadBatch would fault on
	// the unmapped pages). The goroutine's send of ReadBatch's result may
	// still come after Close returned: on a slow guest it did, so wait for
	// it rather than expect it already sent.
	if err := await(t, done, 2*time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked ReadBatch returned %v, want ErrClosed", err)
	}
	if took > 500*time.Millisecond {
		t.Errorf("Close took %v to unblock ReadBatch", took)
	}

	if err := r.ReadBatch(b); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadBatch after Close = %v, want ErrClosed", err)
	}
	if n, err := r.ReadAvailable(b); n != 0 || !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAvailable after Close = %d, %v, want ErrClosed", n, err)
	}
	if got := r.AvailableBytes(); got != 0 {
		t.Errorf("AvailableBytes after Close = %d", got)
	}
	r.Interrupt() // no-op
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestInterrupt(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	e.setSizes(0, []int{10, 20, 30, 40, 50, 60})
	r := newReader(t, e.ring)
	b := NewBatch(4096, 0)

	// A blocked read wakes up.
	done := blockedRead(t, r, b)
	r.Interrupt()
	if err := await(t, done, 2*time.Second); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted ReadBatch = %v, want ErrInterrupted", err)
	}

	// Interrupts before a wait are remembered, and coalesce.
	r.Interrupt()
	r.Interrupt()
	if err := r.ReadBatch(b); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("ReadBatch after Interrupt = %v, want ErrInterrupted", err)
	}
	// ...and consumed: this one blocks until a record arrives.
	done = blockedRead(t, r, b)
	runOnce(t, prog, 1)
	if err := await(t, done, 2*time.Second); err != nil || b.Len() != 1 {
		t.Fatalf("ReadBatch = %v with %d records, want 1 record", err, b.Len())
	}
	checkRecord(t, b.Record(0), 0, 10)

	// Pending records win over a pending interrupt.
	b.Reset()
	r.Interrupt()
	runOnce(t, prog, 1)
	if err := r.ReadBatch(b); err != nil || b.Len() != 1 {
		t.Fatalf("ReadBatch = %v with %d records, want 1 record", err, b.Len())
	}
	if err := r.ReadBatch(b); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("ReadBatch on an empty ring with a pending Interrupt = %v, want ErrInterrupted", err)
	}

	// Records written with BPF_RB_NO_WAKEUP wake nobody; Interrupt makes
	// ReadBatch return them.
	b.Reset()
	e.setFlags(noWakeup)
	done = blockedRead(t, r, b)
	runOnce(t, prog, 3)
	select {
	case err := <-done:
		t.Logf("ReadBatch woke without Interrupt (%v, %d records)", err, b.Len())
		r.Interrupt() // for the check below
	case <-time.After(100 * time.Millisecond):
		r.Interrupt()
		if err := await(t, done, 2*time.Second); err != nil {
			t.Fatalf("ReadBatch = %v, want the records", err)
		}
	}
	if b.Len() != 3 {
		t.Fatalf("got %d records, want 3", b.Len())
	}
	for i := range 3 {
		checkRecord(t, b.Record(i), 2+i, 30+10*i)
	}
	// The interrupt is answered once the ring is empty.
	if err := r.ReadBatch(b); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("ReadBatch after the interrupted read = %v, want ErrInterrupted", err)
	}
}

// TestConcurrentProducer reads while a producer writes faster than the small
// ring can hold: every record that made it in arrives once, in order, intact,
// and the records plus the producer's failures add up to its runs.
func TestConcurrentProducer(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := make([]int, maxSeq)
	for i := range sizes {
		sizes[i] = 4 + rng.IntN(300)
	}
	e.setSizes(0, sizes)
	r := newReader(t, e.ring)

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		received int
		wakeups  int
		readErr  error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := NewBatch(ringSize, 0)
		last := -1
		check := func() error {
			for i := range b.Len() {
				rec := b.Record(i)
				if len(rec) < 4 {
					return errors.New("record too short")
				}
				seq := int(binary.LittleEndian.Uint32(rec))
				if seq <= last || seq >= len(sizes) || !bytes.Equal(rec, wantRecord(uint32(seq), sizes[seq])) {
					return errors.New("record out of order or corrupt")
				}
				last = seq
			}
			received += b.Len()
			b.Reset()
			return nil
		}
		for {
			err := r.ReadBatch(b)
			wakeups++
			if cerr := check(); cerr != nil {
				readErr = cerr
				return
			}
			switch {
			case err == nil:
			case errors.Is(err, ErrInterrupted) && stop.Load():
				for {
					n, err := r.ReadAvailable(b)
					if cerr := check(); cerr != nil || err != nil {
						readErr = errors.Join(cerr, err)
						return
					}
					if n == 0 {
						return
					}
				}
			default:
				readErr = err
				return
			}
		}
	}()

	// Short runs, so that the reader is woken many times and keeps up
	// with part of the load; the ring still overflows now and then.
	for i := range 600 {
		runRepeat(t, prog, 20)
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // let the reader empty the ring
		}
	}
	stop.Store(true)
	r.Interrupt()
	waitGroup(t, &wg, r)
	if readErr != nil {
		t.Fatal(readErr)
	}
	seq, fails := e.counters()
	if uint64(received)+fails != seq {
		t.Fatalf("received %d + failed %d != produced %d", received, fails, seq)
	}
	t.Logf("%d runs: %d records received in %d reads, %d lost to a full ring", seq, received, wakeups, fails)
}

// TestMapClosedAfterNewReader: the Reader does not depend on the caller's
// map fd staying open.
func TestMapClosedAfterNewReader(t *testing.T) {
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	e.setSizes(0, []int{33})
	r := newReader(t, e.ring)
	e.ring.Close()
	runOnce(t, prog, 1)
	b := NewBatch(4096, 0)
	if err := r.ReadBatch(b); err != nil || b.Len() != 1 {
		t.Fatalf("ReadBatch = %v with %d records", err, b.Len())
	}
	checkRecord(t, b.Record(0), 0, 33)
}

// TestZeroAllocs checks that reads allocate nothing, whatever the number of
// records.
func TestZeroAllocs(t *testing.T) {
	e := newTestEnv(t, ringSize)
	prog := e.outputProg()
	sizes := make([]int, 400)
	for i := range sizes {
		sizes[i] = 16 + i%8
	}
	e.setSizes(0, sizes)
	r := newReader(t, e.ring)
	b := NewBatch(4096, 100)

	// AllocsPerRun calls f once to warm up, then once measured: 2 batches.
	runOnce(t, prog, 200)
	if a := testing.AllocsPerRun(1, func() {
		b.Reset()
		if err := r.ReadBatch(b); err != nil || b.Len() != 100 {
			t.Fatalf("ReadBatch = %v with %d records", err, b.Len())
		}
	}); a != 0 {
		t.Errorf("ReadBatch: %v allocations per call", a)
	}
	runOnce(t, prog, 200)
	if a := testing.AllocsPerRun(1, func() {
		b.Reset()
		if n, err := r.ReadAvailable(b); err != nil || n != 100 {
			t.Fatalf("ReadAvailable = %d, %v", n, err)
		}
	}); a != 0 {
		t.Errorf("ReadAvailable: %v allocations per call", a)
	}
	if a := testing.AllocsPerRun(5, func() {
		r.Interrupt()
		if err := r.ReadBatch(b); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("ReadBatch = %v", err)
		}
	}); a != 0 {
		t.Errorf("Interrupt + ReadBatch: %v allocations per call", a)
	}
}

// TestCloseRace closes readers while other goroutines read, interrupt and
// query them (run with -race).
func TestCloseRace(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEnv(t, ringSize)
	for range 20 {
		r, err := NewReader(e.ring)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(3)
		go func() {
			defer wg.Done()
			b := NewBatch(4096, 0)
			for {
				err := r.ReadBatch(b)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, ErrInterrupted) {
					t.Error(err)
					return
				}
			}
		}()
		for range 2 {
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					r.Interrupt()
					r.AvailableBytes()
					if i > 50 {
						if err := r.Close(); err != nil {
							t.Error(err)
						}
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

// waitGroup waits for wg; if that takes too long, it closes r to release the
// reader and fails.
func waitGroup(t *testing.T, wg *sync.WaitGroup, r *Reader) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.Close()
		<-done
		t.Fatal("reader goroutine did not finish within 5s")
	}
}
