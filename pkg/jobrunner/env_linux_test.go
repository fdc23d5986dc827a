package jobrunner

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/linkwatch"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// captureEnv is a real pcap manager and capture engine on the B end of a
// veth pair in namespaces of the test's own; frames are sent from A. It
// counts the captures started through it.
type captureEnv struct {
	pair   *testbed.Pair
	m      *pcapmgr.Manager
	starts atomic.Int32
}

func (e *captureEnv) StartJob(spec pcapmgr.JobSpec) (Job, error) {
	e.starts.Add(1)
	return Manager(e.m).StartJob(spec)
}

// mustCaptureEnv builds it; it is stopped at the test's cleanup (after
// the runners the test starts later).
func mustCaptureEnv(t *testing.T) *captureEnv {
	t.Helper()
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtjob"})
	e, err := capture.NewEngine(capture.EngineOptions{NetNS: pair.B.NSPath, RingSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	lw := linkwatch.New(linkwatch.Options{NetNS: pair.B.NSPath})
	m := pcapmgr.New(pcapmgr.Options{Engine: e, Links: lw})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- lw.Run(ctx) }()
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
			if err := e.Close(); err != nil {
				t.Error(err)
			}
		})
	})
	deadline := time.Now().Add(5 * time.Second)
	for !lw.Synced() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return &captureEnv{pair: pair, m: m}
}

// send sends n UDP frames of size bytes from A to B's port.
func (e *captureEnv) send(t *testing.T, port uint16, n, size int) {
	t.Helper()
	var frames [][]byte
	for i := range n {
		frames = append(frames, trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{
			SrcMAC: e.pair.A.MAC, DstMAC: e.pair.B.MAC, Src: e.pair.A.IPv4, Dst: e.pair.B.IPv4,
			SrcPort: uint16(20000 + i%1000), DstPort: port, Size: size,
		})))
	}
	if err := trafficgen.SendRaw(e.pair.A, frames); err != nil {
		t.Fatal(err)
	}
}
