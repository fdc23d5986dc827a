package linkwatch

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestCancel: Run returns nil soon after its context ends, and leaves no
// goroutine behind (netlink's included).
func TestCancel(t *testing.T) {
	e := mustEnv(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := mustStart(t, e, Options{ReceiveBufferSize: 1})
	mustAddLink(t, e, "lw0", true)
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	t.Logf("Run returned %v after cancel", time.Since(start))
	if !s.Synced() {
		t.Errorf("not synced after Run")
	}
}

// TestCancelledBeforeRun: Run with a done context returns nil at once.
func TestCancelledBeforeRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(Options{NetNS: "/nonexistent"}).Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// TestNoNamespace: Run cannot subscribe at all and says where.
func TestNoNamespace(t *testing.T) {
	const path = "/nonexistent/netns/lw"
	err := New(Options{NetNS: path}).Run(t.Context())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Run = %v, want an error wrapping fs.ErrNotExist", err)
	}
	if want := "subscribe to link events in " + path; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Run = %q, want it to start %q", err, want)
	}
}
