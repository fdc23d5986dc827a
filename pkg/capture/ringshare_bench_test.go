//go:build linux

package capture

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/gen"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
	"github.com/ringtap/ringtap/ringbuf"
)

// BenchmarkRingSharing measures what producers on several CPUs pay for
// sharing one ring (one lock, one producer position) instead of writing to
// a ring each: the XDP program runs with BPF_PROG_RUN on every CPU at once,
// each runner pinned to its CPU, and the kernel-measured ns per frame is
// averaged over the CPUs. The rings are drained between rounds, outside
// the measured time, so neither variant runs into a full ring.
func BenchmarkRingSharing(b *testing.B) {
	testbedtest.RequirePrivileged(b)
	online := runtime.NumCPU()
	if online < 2 {
		b.Skip("needs two CPUs")
	}
	const repeat = 20_000
	frame := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcPort: 1, DstPort: 2, Size: 64}))
	for _, shared := range []bool{false, true} {
		name := "per-cpu"
		if shared {
			name = "shared"
		}
		b.Run(fmt.Sprintf("cpus=%d/%s", online, name), func(b *testing.B) {
			spec, err := gen.LoadCapture()
			if err != nil {
				b.Fatal(err)
			}
			// Each CPU writes repeat records of 96 bytes (+8 header) per round.
			m, err := newMaps(spec, 16<<20, shared)
			if err != nil {
				b.Fatal(err)
			}
			defer m.close()
			prog, err := loadProgram(spec, m, progParams{wakeup: 1 << 30, slots: []slotProg{{snaplen: 128}}})
			if err != nil {
				b.Fatal(err)
			}
			defer prog.Close()
			var readers []*ringbuf.Reader
			for _, rm := range m.ringMaps {
				r, err := ringbuf.NewReader(rm)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				readers = append(readers, r)
			}
			batch := ringbuf.NewBatch(32<<20, 1<<20)
			var total float64
			for b.Loop() {
				per := make([]float64, online)
				errs := make([]error, online)
				var wg sync.WaitGroup
				for cpu := range online {
					wg.Add(1)
					go func() {
						defer wg.Done()
						runtime.LockOSThread() // never unlocked: the pinned thread dies with the goroutine
						var set unix.CPUSet
						set.Set(cpu)
						if errs[cpu] = unix.SchedSetaffinity(0, &set); errs[cpu] != nil {
							return
						}
						_, d, err := prog.Benchmark(frame, repeat, nil)
						per[cpu], errs[cpu] = float64(d.Nanoseconds()), err
					}()
				}
				wg.Wait()
				for cpu, err := range errs {
					if err != nil {
						b.Fatalf("cpu %d: %v", cpu, err)
					}
					total += per[cpu] / float64(online)
				}
				for _, r := range readers {
					for {
						batch.Reset()
						if n, err := r.ReadAvailable(batch); err != nil || n == 0 {
							break
						}
					}
				}
			}
			sum, err := m.counterSum(progKey(kindXDP))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(total/float64(b.N), "ns/pkt")
			b.ReportMetric(float64(sum.Dropped), "dropped")
		})
	}
}
