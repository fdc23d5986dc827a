package capture

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// bootClock converts the BPF timestamps (CLOCK_BOOTTIME, which keeps counting
// across suspend and is never stepped) to wall-clock Unix nanoseconds by
// adding REALTIME-BOOTTIME. The offset is re-sampled periodically so that a
// clock step (NTP, settimeofday) reaches the file within one period.
type bootClock struct{ offset atomic.Int64 }

func (c *bootClock) sample() {
	best := int64(-1)
	var off int64
	// Take the tightest of a few bracketed samples.
	for range 3 {
		var b1, r, b2 unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &b1)
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &r)
		_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &b2)
		width := b2.Nano() - b1.Nano()
		if best < 0 || width < best {
			best = width
			off = r.Nano() - (b1.Nano()+b2.Nano())/2
		}
	}
	c.offset.Store(off)
}

func (c *bootClock) wall(bootNS uint64) int64 { return int64(bootNS) + c.offset.Load() }
