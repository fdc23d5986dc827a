package export

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
)

// freezeProxy forwards TCP to a server and can freeze: connections stay
// open but nothing moves, as through a network partition without resets.
type freezeProxy struct {
	l      net.Listener
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func mustFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{l: l}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(s, c) })
			p.wg.Go(func() { p.pipe(c, s) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		p.Thaw()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *freezeProxy) Addr() string { return p.l.Addr().String() }

func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezeProxy) Freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

func (p *freezeProxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// TestStall freezes the network in the middle of a multipart upload (no
// reset, no error: the connection just stops moving). The watchdog fails
// the attempt after the stall timeout, and once the network moves again
// the file arrives once, with no multipart upload left pending.
func TestStall(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	proxy := mustFreezeProxy(t, srv.Addr())
	cfg := testConfig(t, srv)
	cfg.Endpoint = "http://" + proxy.Addr()
	cfg.PartSize = MinPartSize
	cfg.StallTimeout = 300 * time.Millisecond
	f := mustFile(t, t.TempDir(), "big.pcapng", 4*MinPartSize, 1)
	var once sync.Once
	cfg.hooks = &hooks{
		abortTimeout: 200 * time.Millisecond,
		read: func(key string, n int) {
			once.Do(proxy.Freeze) // from the first byte of the first part on
		},
	}
	x := mustNew(t, cfg)
	mustEnqueue(t, x, f)
	runInBackground(t, x)
	waitFor(t, "a stalled attempt", func() bool { return x.Stats().UploadFailures >= 1 })
	proxy.Thaw()
	mustDrain(t, x)
	// The stalled attempt's abort times out while frozen; it is aborted
	// by the next attempt, or by the abort request itself, delivered late
	// when the network thaws (as a real network may): aborted is 0 or 1.
	if st := x.Stats(); st.Uploads != 1 || st.AbortedUploads > 1 {
		t.Errorf("uploads %d, aborted %d; want 1 and at most 1", st.Uploads, st.AbortedUploads)
	}
	mustArrivedOnce(t, srv.Client(t), cfg, []testFile{f})
}

// recordLevels is a slog handler that keeps the level and reason of each
// record.
type recordLevels struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordLevels) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLevels) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordLevels) WithGroup(string) slog.Handler            { return h }
func (h *recordLevels) Handle(_ context.Context, r slog.Record) error {
	reason := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			reason = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, r.Level.String()+" "+reason)
	h.mu.Unlock()
	return nil
}

func (h *recordLevels) count(rec string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r == rec {
			n++
		}
	}
	return n
}

// TestCredentialsRejectedLater: credentials that stop working after the
// start (rotated, revoked) make every attempt fail; each failure is logged
// as an error with the reason, the file stays in the spool, and it is
// uploaded once the credentials work again.
func TestCredentialsRejectedLater(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	cfg := testConfig(t, srv)
	logs := &recordLevels{}
	cfg.Logger = slog.New(logs)
	x := mustNew(t, cfg)
	good := x.core
	bad := cfg
	bad.SecretAccessKey = "rotated-away"
	r, err := bad.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if x.core, err = newCore(r); err != nil {
		t.Fatal(err)
	}
	f := mustFile(t, t.TempDir(), "a.pcapng", 1000, 1)
	mustEnqueue(t, x, f)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	n, err := x.Drain(ctx)
	cancel()
	if n != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Drain with rejected credentials = %d, %v; want 1 and DeadlineExceeded", n, err)
	}
	failures := x.Stats().UploadFailures
	if got := logs.count("ERROR credentials"); failures < 2 || got != int(failures) {
		t.Errorf("%d failures, %d logged as errors with reason credentials; want at least 2, all", failures, got)
	}
	if !x.Pending(f.Path) {
		t.Error("file not pending")
	}
	x.core = good // the credentials work again
	mustDrain(t, x)
	mustArrivedOnce(t, srv.Client(t), cfg, []testFile{f})
}
