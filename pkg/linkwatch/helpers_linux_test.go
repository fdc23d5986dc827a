package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// waitFor bounds every wait in these tests; nothing should take near it.
const waitFor = 10 * time.Second

// env is one test's namespace (host A of its own testbed pair) and a
// netlink handle in it.
type env struct {
	host testbed.Host
	nl   *netlink.Handle
}

func mustEnv(t *testing.T) env {
	t.Helper()
	p := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "lw"})
	h, err := netlink.NewHandleAt(p.A.NS)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", p.A.NSPath, err)
	}
	t.Cleanup(h.Close)
	return env{host: p.A, nl: h}
}

// started is a running Watcher; stop cancels it and returns Run's error.
type started struct {
	*Watcher
	stop func() error
	// applied receives the alias of each update Run applies.
	applied chan string
}

// mustStart runs a Watcher on e's namespace until the test ends and waits
// for its first dump.
func mustStart(t *testing.T, e env, opts Options) started {
	t.Helper()
	opts.NetNS = e.host.NSPath
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return mustStartWatcher(t, e, New(opts))
}

// mustStartWatcher is mustStart for a Watcher made with e's namespace.
func mustStartWatcher(t *testing.T, e env, w *Watcher) started {
	t.Helper()
	applied := make(chan string, 4096)
	w.onApplied = func(alias string) {
		select {
		case applied <- alias:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(waitFor):
				runErr = fmt.Errorf("Run did not return %v after cancel", waitFor)
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	deadline := time.Now().Add(waitFor)
	for !w.Synced() {
		select {
		case err := <-errc:
			t.Fatalf("Run returned before the first dump: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not synced after %v", waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return started{Watcher: w, stop: stop, applied: applied}
}

func mustDump(t *testing.T, e env) map[string]Link {
	t.Helper()
	nls, err := e.nl.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	out := map[string]Link{}
	for _, l := range nls {
		out[l.Attrs().Name] = fromNetlink(l)
	}
	return out
}

// mustMatchKernel waits until w's view equals a fresh dump and returns it
// with how long that took.
func mustMatchKernel(t *testing.T, e env, w *Watcher) (map[string]Link, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		want := mustDump(t, e)
		diff := cmp.Diff(want, w.Links())
		if diff == "" {
			return want, time.Since(start)
		}
		if time.Since(start) > waitFor {
			t.Fatalf("view differs from the kernel's after %v (-kernel +view):\n%s", waitFor, diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustNotified(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("no notification after %v", waitFor)
	}
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// mustSentinel changes lo's alias, which is not part of a Link, and waits
// until w has applied that update: every earlier event has been applied
// too, without notifying for the sentinel itself.
func mustSentinel(t *testing.T, e env, s started) {
	t.Helper()
	alias := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	lo, err := e.nl.LinkByName("lo")
	if err != nil {
		t.Fatalf("find lo: %v", err)
	}
	if err := e.nl.LinkSetAlias(lo, alias); err != nil {
		t.Fatalf("set alias on lo: %v", err)
	}
	timeout := time.After(waitFor)
	for {
		select {
		case a := <-s.applied:
			if a == alias {
				return
			}
		case <-timeout:
			t.Fatalf("sentinel update not applied after %v", waitFor)
		}
	}
}

// addLink adds a standalone link: a dummy, or an ifb on kernels built
// without the dummy driver (as the CI kernel is).
func addLink(h *netlink.Handle, name string, up bool) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if up {
		attrs.Flags = net.FlagUp
	}
	err := h.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = h.LinkAdd(&netlink.Ifb{LinkAttrs: attrs})
	}
	if err != nil {
		return fmt.Errorf("add link %s: %w", name, err)
	}
	return nil
}

func mustAddLink(t *testing.T, e env, name string, up bool) netlink.Link {
	t.Helper()
	if err := addLink(e.nl, name, up); err != nil {
		t.Fatal(err)
	}
	return mustLink(t, e, name)
}

func mustLink(t *testing.T, e env, name string) netlink.Link {
	t.Helper()
	l, err := e.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	return l
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
