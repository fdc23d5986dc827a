package pcapmgr_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/linkwatch"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
	"github.com/ringtap/ringtap/pkg/storage"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// running is a manager with its link watcher, on the B side of a pair.
type running struct {
	e    *capture.Engine
	m    *pcapmgr.Manager
	pair *testbed.Pair
	stop func() // stops the manager and the watcher, once
}

// mustRunning starts them; the manager is stopped (and checked) by the
// test's cleanup, or by running.stop.
func mustRunning(t *testing.T) *running {
	t.Helper()
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
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
	stop := func() {
		once.Do(func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !lw.Synced() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return &running{e: e, m: m, pair: pair, stop: stop}
}

func udpFrames(t *testing.T, p *testbed.Pair, port uint16, n, size int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		out = append(out, trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{
			SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4,
			SrcPort: uint16(20000 + i), DstPort: port, Size: size,
		})))
	}
	return out
}

func readPcapng(t *testing.T, path string) ([]pcapio.Packet, map[int]pcapio.InterfaceStats) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapio.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []pcapio.Packet
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
	return out, r.Stats()
}

// capinfosPackets is the packet count capinfos reads in path.
func capinfosPackets(t *testing.T, path string) string {
	t.Helper()
	if _, err := exec.LookPath("capinfos"); err != nil {
		testbedtest.SkipOrFail(t, "capinfos is not installed (hack/deps.sh installs it)")
	}
	out, err := exec.Command("capinfos", "-M", "-c", "-T", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos %s: %v\n%s", path, err, out)
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

type teeRecorder struct {
	mu sync.Mutex
	n  int
}

func (r *teeRecorder) WritePacket(*pcapio.Packet) error {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	return nil
}

func (r *teeRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// A job shares the interface with a standing capture: it gets exactly
// what its filter selects, up to its packet bound, its tee sees what its
// file holds, and the standing capture loses nothing, before, during or
// after the job.
func TestJobBesideStandingCapture(t *testing.T) {
	dir := t.TempDir() // removed after the manager stopped
	r := mustRunning(t)
	ctx := context.Background()
	udp, err := filter.ForCapture("udp") // not the kernel's own IPv6 neighbour discovery
	if err != nil {
		t.Fatal(err)
	}
	standing := []pcapmgr.Desired{{Name: "all", Interface: r.pair.B.Link, Key: "all",
		Spec: capture.Spec{Hook: capture.HookTC, Direction: capture.DirInOut, SnapLen: 256, Filter: udp}, Storage: storage.Options{Dir: filepath.Join(dir, "all")}}}
	if err := r.m.Apply(ctx, standing); err != nil {
		t.Fatal(err)
	}
	waitAll(t, r.m, agent.CaptureRunning, 1)
	before, during, after := udpFrames(t, r.pair, 53, 10, 200), udpFrames(t, r.pair, 53, 40, 200), udpFrames(t, r.pair, 53, 5, 200)
	other := udpFrames(t, r.pair, 9999, 15, 200)
	if err := trafficgen.SendRaw(r.pair.A, before); err != nil {
		t.Fatal(err)
	}
	f, err := filter.ForCapture("udp dst port 53")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "job.pcapng")
	job, err := r.m.StartJob(pcapmgr.JobSpec{Name: "job-1", Interfaces: []string{r.pair.B.Link}, Filter: f, SnapLen: 96,
		Path: path, MaxPackets: 30, Application: "ringtap test"})
	if err != nil {
		t.Fatal(err)
	}
	tee := &teeRecorder{}
	job.SetTee(tee)
	if _, err := r.m.StartJob(pcapmgr.JobSpec{Name: "job-1", Interfaces: []string{r.pair.B.Link}, Path: path + "2"}); err == nil {
		t.Error("a second job of the same name started")
	}
	if _, err := r.m.StartJob(pcapmgr.JobSpec{Name: "all", Interfaces: []string{r.pair.B.Link}, Path: path + "3"}); err == nil {
		t.Error("a job named as a standing capture started")
	}
	if _, err := r.m.StartJob(pcapmgr.JobSpec{Name: "job-2", Interfaces: []string{"nosuch0"}, Path: path + "4"}); err == nil || !strings.Contains(err.Error(), "not present") {
		t.Errorf("a job on a missing interface: %v", err)
	}
	if _, err := os.Stat(path + "4"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a job that did not start left its file: %v", err)
	}
	if err := trafficgen.SendRaw(r.pair.A, append(append([][]byte{}, during...), other...)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-job.LimitReached():
	case <-time.After(10 * time.Second):
		t.Fatalf("job did not reach its 30 packets: %+v", job.Progress())
	}
	got, err := job.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := job.Stop(); err != nil || again != got {
		t.Errorf("second Stop: %+v, %v; first %+v", again, err, got)
	}
	if got.Packets != 30 || got.Drops != 0 || got.Matched < 30 {
		t.Errorf("job progress %+v: want 30 packets, no drops", got)
	}
	pkts, stats := readPcapng(t, path)
	if len(pkts) != 30 || uint64(len(pkts)) != got.Packets {
		t.Fatalf("file holds %d packets, progress says %d", len(pkts), got.Packets)
	}
	// Each packet is the first 96 bytes of one of the frames sent to port
	// 53 while the job ran, in order.
	for i, p := range pkts {
		if p.WireLen != 200 || !bytes.Equal(p.Data, during[i][:96]) {
			t.Fatalf("packet %d: %d of %d bytes, not the first 96 of frame %d sent to port 53", i, len(p.Data), p.WireLen, i)
		}
	}
	if st, ok := stats[0]; !ok || st.Accepted < 30 {
		t.Errorf("closing statistics block %+v", stats)
	}
	if n := capinfosPackets(t, path); n != "30" {
		t.Errorf("capinfos counts %s packets, want 30", n)
	}
	fi, _ := os.Stat(path)
	if uint64(fi.Size()) != got.Size {
		t.Errorf("file is %d bytes, progress says %d", fi.Size(), got.Size)
	}
	if tee.count() != 30 {
		t.Errorf("tee got %d packets, the file holds 30", tee.count())
	}
	if err := trafficgen.SendRaw(r.pair.A, after); err != nil {
		t.Fatal(err)
	}
	want := uint64(len(before) + len(during) + len(other) + len(after))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.m.Captures()[0]
		if st.Written >= want {
			if st.Written != want || st.RingDrops != 0 {
				t.Errorf("standing capture %+v: want %d written, none dropped", st, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standing capture wrote %d of %d", st.Written, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info := r.e.Interfaces(); len(info) != 1 || info[0].Captures != 1 {
		t.Errorf("engine holds %+v after the job, want the standing capture only", info)
	}
}

// MaxBytes bounds the whole file, closing statistics included.
func TestJobMaxBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job.pcapng")
	r := mustRunning(t)
	const limit = 8 << 10
	job, err := r.m.StartJob(pcapmgr.JobSpec{Name: "job-bytes", Interfaces: []string{r.pair.B.Link}, Path: path, MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	if err := trafficgen.SendRaw(r.pair.A, udpFrames(t, r.pair, 7, 40, 500)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-job.LimitReached():
	case <-time.After(10 * time.Second):
		t.Fatalf("job did not fill its %d bytes: %+v", limit, job.Progress())
	}
	got, err := job.Stop()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	pkts, _ := readPcapng(t, path)
	// 500-byte frames take 544 bytes each: the header and 13 or so fit.
	if fi.Size() > limit || fi.Size() < limit-1200 || uint64(len(pkts)) != got.Packets || got.Packets == 0 {
		t.Errorf("file of %d bytes with %d packets (progress %+v): want at most %d bytes, nearly full", fi.Size(), len(pkts), got, limit)
	}
	if n := capinfosPackets(t, path); n != strconv.Itoa(len(pkts)) {
		t.Errorf("capinfos counts %s packets, we wrote %d", n, len(pkts))
	}
	if _, err := r.m.StartJob(pcapmgr.JobSpec{Name: "job-tiny", Interfaces: []string{r.pair.B.Link}, Path: path + ".x", MaxBytes: 100}); err == nil {
		t.Error("a job whose max bytes cannot hold a header started")
	}
}

// A job still running when the manager stops is stopped with it, its
// file finished, before the engine goes.
func TestJobStoppedWithManager(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job.pcapng")
	r := mustRunning(t)
	job, err := r.m.StartJob(pcapmgr.JobSpec{Name: "job-x", Interfaces: []string{r.pair.B.Link}, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := trafficgen.SendRaw(r.pair.A, udpFrames(t, r.pair, 7, 12, 100)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for job.Progress().Packets < 12 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.stop()
	if pkts, stats := readPcapng(t, path); len(pkts) < 12 || len(stats) != 1 {
		t.Errorf("file holds %d packets and %d statistics blocks after the manager stopped, want 12 or more and 1", len(pkts), len(stats))
	}
	if info := r.e.Interfaces(); len(info) != 0 {
		t.Errorf("engine still holds %+v", info)
	}
}
