package trafficgen

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestTmpTiming(t *testing.T) {
	p, _, s := livePair(t, AttachDrop, udpTo)
	_ = p
	s.h.Do(func() error {
		restore, _ := blockAsyncSignals()
		defer restore()
		opts := ebpf.RunOptions{Data: s.frame, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, Context: xdpMD{DataEnd: uint32(len(s.frame)), IngressIfindex: uint32(s.h.Index)}}
		for _, rep := range []uint32{2, 1 << 16, 1 << 18, 1 << 20, 1 << 22} {
			opts.Repeat = rep
			st := time.Now()
			for i := 0; i < 5; i++ {
				s.prog.Run(&opts)
			}
			t.Logf("repeat %d: %v per call", rep, time.Since(st)/5)
		}
		st := time.Now()
		for i := 0; i < 5; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("sleep 5ms: %v", time.Since(st)/5)
		return nil
	})
}
