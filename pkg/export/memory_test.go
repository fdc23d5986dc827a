package export

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	minio "github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
)

// heapProbe samples the Go heap (live and not yet swept objects) while
// an upload runs and reports the peak above the level it started from,
// and the bytes allocated meanwhile.
type heapProbe struct {
	cpu     time.Duration
	start   uint64
	startMS runtime.MemStats
	peak    uint64
	stop    chan struct{}
	wg      sync.WaitGroup
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapProbe() *heapProbe {
	runtime.GC()
	p := &heapProbe{stop: make(chan struct{})}
	runtime.ReadMemStats(&p.startMS)
	p.cpu = cpuTime()
	p.start = heapNow()
	p.peak = p.start
	p.wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				p.peak = max(p.peak, heapNow())
			}
		}
	})
	return p
}

// end returns the peak heap growth and the bytes allocated, in bytes,
// and the CPU time the process used (user and system).
func (p *heapProbe) end() (peak, allocated uint64, cpu time.Duration) {
	close(p.stop)
	p.wg.Wait()
	cpu = cpuTime() - p.cpu
	p.peak = max(p.peak, heapNow())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return p.peak - p.start, ms.TotalAlloc - p.startMS.TotalAlloc, cpu
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const mib = 1 << 20

// TestMemoryBounded uploads a 256 MiB file in 16 MiB parts, four at a
// time, and checks that the heap grows by far less than one part: parts
// are read from the file as they are sent (the figure is logged).
func TestMemoryBounded(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{})
	srv.MustMakeBucket(t, testBucket, false)
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d parts at a time", conc), func(t *testing.T) {
			cfg := testConfig(t, srv)
			cfg.PartSize, cfg.Concurrency = 16*mib, conc
			cfg.Prefix = fmt.Sprintf("memory/%d/", conc)
			x := mustNew(t, cfg)
			f := mustFile(t, t.TempDir(), "big.pcapng", 256*mib, 1)
			mustEnqueue(t, x, f)
			p := startHeapProbe()
			mustDrain(t, x)
			peak, alloc, _ := p.end()
			t.Logf("256 MiB in 16 MiB parts, %d at a time: peak heap +%.1f MiB, allocated %.1f MiB", conc, float64(peak)/mib, float64(alloc)/mib)
			if got := x.Stats().Uploads; got != 1 {
				t.Fatalf("uploads = %d", got)
			}
			if limit := uint64(16 * mib); peak > limit {
				t.Errorf("peak heap grew by %d MiB, want under %d MiB (one part)", peak/mib, limit/mib)
			}
		})
	}
}

// BenchmarkUpload measures the upload of a 256 MiB file to a local MinIO
// (MB/s), as one PUT and in 16 MiB parts one and four at a time, with the
// peak heap growth and bytes allocated per upload. For comparison,
// "minio-go-unknown-size" is minio-go's PutObject given size -1, the way
// a streaming writer uploads: it buffers a whole part.
func BenchmarkUpload(b *testing.B) {
	for _, store := range []struct {
		name string
		opts miniotest.Options
	}{{"tmpfs", miniotest.Options{Tmpfs: true}}, {"disk", miniotest.Options{}}} {
		b.Run(store.name, func(b *testing.B) { benchmarkUpload(b, store.opts) })
	}
}

func benchmarkUpload(b *testing.B, opts miniotest.Options) {
	srv := miniotest.Start(b, opts)
	srv.MustMakeBucket(b, testBucket, false)
	c := srv.Client(b)
	f := mustFile(b, b.TempDir(), "big.pcapng", 256*mib, 1)
	tests := []struct {
		name        string
		partSize    int64
		concurrency int
		checksum    Checksum
	}{
		{name: "single-put", partSize: 256 * mib},
		{name: "parts-16MiB-x1", partSize: 16 * mib, concurrency: 1},
		{name: "parts-16MiB-x4", partSize: 16 * mib, concurrency: 4},
		{name: "parts-16MiB-x4-crc32c", partSize: 16 * mib, concurrency: 4, checksum: ChecksumCRC32C},
		{name: "parts-16MiB-x4-none", partSize: 16 * mib, concurrency: 4, checksum: ChecksumNone},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			cfg := testConfig(b, srv)
			cfg.Logger = quietLogger()
			cfg.PartSize, cfg.Concurrency, cfg.Checksum = tt.partSize, tt.concurrency, tt.checksum
			x := mustNew(b, cfg)
			key := mustKey(b, cfg, f.FinishedFile)
			b.SetBytes(f.Size)
			var peak, alloc uint64
			var cpu time.Duration
			for b.Loop() {
				mustEnqueue(b, x, f)
				p := startHeapProbe()
				mustDrain(b, x)
				pk, al, dt := p.end()
				peak, alloc, cpu = max(peak, pk), alloc+al, cpu+dt
				b.StopTimer()
				if err := c.RemoveObject(context.Background(), testBucket, key, minio.RemoveObjectOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/mib, "peak-heap-MiB")
			b.ReportMetric(float64(alloc)/mib/float64(b.N), "alloc-MiB/op")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "client-cpu-s/op")
		})
	}
	b.Run("minio-go-unknown-size", func(b *testing.B) {
		b.SetBytes(f.Size)
		var peak, alloc uint64
		var cpu time.Duration
		for b.Loop() {
			r := mustOpen(b, f.Path)
			p := startHeapProbe()
			// io.Reader only: what a writer streaming into minio-go gives.
			if _, err := c.PutObject(context.Background(), testBucket, "unknown-size", struct{ io.Reader }{r}, -1, minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
			pk, al, dt := p.end()
			peak, alloc, cpu = max(peak, pk), alloc+al, cpu+dt
			r.Close()
		}
		b.ReportMetric(float64(peak)/mib, "peak-heap-MiB")
		b.ReportMetric(float64(alloc)/mib/float64(b.N), "alloc-MiB/op")
		b.ReportMetric(cpu.Seconds()/float64(b.N), "client-cpu-s/op")
	})
}
