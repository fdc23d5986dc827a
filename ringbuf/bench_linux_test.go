//go:build linux

package ringbuf

import (
	"testing"
)

// BenchmarkReadBatch measures draining a full ring of 64-byte records (what
// the reader goroutine does per wakeup). The records are written with one
// BPF_PROG_RUN per iteration while the timer is stopped.
func BenchmarkReadBatch(b *testing.B) {
	const (
		recSize  = 64
		ringSize = 1 << 20
		perIter  = 8192 // 8192 * 72 bytes fit in 1 MiB
	)
	requireBPF(b)
	ring := newRingMap(b, ringSize)
	prog := stackProg(b, ring, recSize)
	r, err := NewReader(ring)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	batch := NewBatch(perIter*recSize, perIter)

	b.ReportAllocs()
	b.SetBytes(perIter * recSize)
	b.ResetTimer()
	records := 0
	for range b.N {
		b.StopTimer()
		runRepeat(b, prog, perIter)
		b.StartTimer()
		batch.Reset()
		if err := r.ReadBatch(batch); err != nil {
			b.Fatal(err)
		}
		if batch.Len() < perIter {
			b.Fatalf("read %d records, want %d", batch.Len(), perIter)
		}
		records += batch.Len()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	b.ReportMetric(float64(records)/float64(b.N), "records/op")
}
