package jobrunner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testRunner is a Runner running against a fake console, offered the
// console's jobs every 50 ms as the poller would.
type testRunner struct {
	*Runner
	dir  string
	log  *syncBuffer
	stop func() // cancels Run and waits for it, once
}

// mustRunner starts a runner for fc with short backoffs; opts overrides
// them. It is stopped at the test's cleanup.
func mustRunner(t *testing.T, fc *fakeConsole, capt Capturer, opts Options) *testRunner {
	t.Helper()
	tr := &testRunner{log: &syncBuffer{}}
	opts.ConsoleURL, opts.TLSConfig, opts.Capture = fc.url, fc.mustClientTLS(t), capt
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "jobs")
	}
	tr.dir = opts.Dir
	opts.Logger = slog.New(slog.NewTextHandler(tr.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Application = "ringtap test"
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tr.Runner = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	offers := make(chan struct{})
	go func() {
		defer close(offers)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			r.Offer(fc.agentJobs())
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	var once sync.Once
	tr.stop = func() {
		once.Do(func() {
			cancel()
			<-offers
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return 30s after its context was done")
			}
		})
	}
	t.Cleanup(func() {
		tr.stop()
		if t.Failed() {
			t.Logf("runner log:\n%s", tr.log)
		}
	})
	return tr
}

func mustEventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", d, what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noCapture is the Capturer of tests in which no capture may start.
type noCapture struct{ t *testing.T }

func (c noCapture) StartJob(spec pcapmgr.JobSpec) (Job, error) {
	c.t.Errorf("a capture started (%s on %v): none may in this test", spec.Name, spec.Interfaces)
	return nil, errors.New("no capture in this test")
}

// readPackets reads a pcapng that must be whole.
func readPackets(t *testing.T, data []byte) []pcapio.Packet {
	t.Helper()
	r, err := pcapio.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read pcapng: %v", err)
	}
	var out []pcapio.Packet
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read pcapng: %v (after %d packets)", err, len(out))
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
}

// capinfosPackets is the packet count capinfos reads in data.
func capinfosPackets(t *testing.T, data []byte) string {
	t.Helper()
	if _, err := exec.LookPath("capinfos"); err != nil {
		testbedtest.SkipOrFail(t, "capinfos is not installed (hack/deps.sh installs it)")
	}
	path := filepath.Join(t.TempDir(), "result.pcapng")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("capinfos", "-M", "-c", "-T", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

// mustPcapng writes a pcapng of n UDP-ish packets of size bytes on one
// interface and returns it.
func mustPcapng(t *testing.T, n, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapio.NewWriter(&b, pcapio.WriterOptions{Format: pcapio.FormatPCAPNG, Application: "ringtap test",
		Interfaces: []pcapio.Interface{{Name: "veth0", LinkType: 1, SnapLen: 262144}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		data := bytes.Repeat([]byte{byte(i)}, size)
		if err := w.WritePacket(&pcapio.Packet{Timestamp: time.Now().UnixNano(), WireLen: uint32(size), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
