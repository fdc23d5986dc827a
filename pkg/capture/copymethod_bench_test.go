//go:build linux

package capture

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ringtap/ringtap/gen"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
	"github.com/ringtap/ringtap/ringbuf"
)

// BenchmarkCopyMethod compares, per frame, the XDP program that ships
// (bpf_ringbuf_reserve of the smallest size class that fits, frame loaded
// straight into the record) with the method that shipped before, kept in
// bpf/copy_bench.c (frame copied into per-CPU scratch, then
// bpf_ringbuf_output copies header+data into the ring). No filter; the rings are drained
// concurrently so neither variant runs into a full ring. Kernel-measured
// ns/pkt via BPF_PROG_RUN.
func BenchmarkCopyMethod(b *testing.B) {
	testbedtest.RequirePrivileged(b)
	methods := []struct {
		name string
		spec func() (*ebpf.CollectionSpec, error)
		prog string
	}{
		{"scratch+output", gen.LoadCopyBench, "rt_xdp_scratch"},
		{"size-class-reserve", gen.LoadCapture, progXDP},
	}
	for _, size := range []int{64, 512, 1500} {
		frame := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcPort: 1, DstPort: 2, Size: size}))
		for _, snap := range []uint32{128, 1500} {
			for _, m := range methods {
				b.Run(fmt.Sprintf("frame=%d/snaplen=%d/%s", size, snap, m.name), func(b *testing.B) {
					spec, err := m.spec()
					if err != nil {
						b.Fatal(err)
					}
					maps, err := newMaps(spec, 8<<20, false)
					if err != nil {
						b.Fatal(err)
					}
					defer maps.close()
					prog, err := loadProgram(spec, maps, progParams{name: m.prog, wakeup: 1 << 30, slots: []slotProg{{snaplen: snap}}})
					if err != nil {
						b.Fatal(err)
					}
					defer prog.Close()
					var stop atomic.Bool
					var wg sync.WaitGroup
					for _, rm := range maps.ringMaps {
						r, err := ringbuf.NewReader(rm)
						if err != nil {
							b.Fatal(err)
						}
						wg.Add(1)
						go func() {
							defer wg.Done()
							defer r.Close()
							batch := ringbuf.NewBatch(4<<20, 1<<16)
							for !stop.Load() {
								batch.Reset()
								_, _ = r.ReadAvailable(batch)
							}
						}()
					}
					var ns float64
					for b.Loop() {
						_, d, err := prog.Benchmark(frame, 10000, nil)
						if err != nil {
							b.Fatal(err)
						}
						ns += float64(d.Nanoseconds())
					}
					stop.Store(true)
					wg.Wait()
					sum, err := maps.counterSum(progKey(kindXDP))
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(ns/float64(b.N), "ns/pkt")
					b.ReportMetric(float64(sum.Dropped), "dropped")
				})
			}
		}
	}
}
