package linkwatch

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestChanges makes one change per case in a fresh namespace while a
// Watcher runs, and checks the notification, the view against the
// kernel's, and what the case is about.
func TestChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup runs before Run.
		setup func(t *testing.T, e env)
		act   func(t *testing.T, e env)
		// notify is whether the change must notify; when false, it must not.
		notify bool
		check  func(t *testing.T, before, after map[string]Link)
	}{
		{
			name: "appear",
			act:  func(t *testing.T, e env) { mustAddLink(t, e, "lw0", true) },
			check: func(t *testing.T, before, after map[string]Link) {
				if _, ok := before["lw0"]; ok {
					t.Errorf("lw0 in the view before it was made")
				}
				if l, ok := after["lw0"]; !ok || !l.Up || l.EncapType != "ether" {
					t.Errorf("lw0 = %+v, %v; want up ether", l, ok)
				}
			},
			notify: true,
		},
		{
			name:  "disappear",
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", true) },
			act: func(t *testing.T, e env) {
				must(t, "delete lw0", e.nl.LinkDel(mustLink(t, e, "lw0")))
			},
			notify: true,
			check: func(t *testing.T, before, after map[string]Link) {
				if _, ok := before["lw0"]; !ok {
					t.Errorf("lw0 not in the view before it was deleted")
				}
				if _, ok := after["lw0"]; ok {
					t.Errorf("lw0 still in the view after it was deleted")
				}
			},
		},
		{
			name:  "recreate",
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", true) },
			act: func(t *testing.T, e env) {
				must(t, "delete lw0", e.nl.LinkDel(mustLink(t, e, "lw0")))
				mustAddLink(t, e, "lw0", true)
			},
			notify: true,
			check: func(t *testing.T, before, after map[string]Link) {
				if before["lw0"].Index == after["lw0"].Index {
					t.Errorf("lw0 kept index %d after being recreated", after["lw0"].Index)
				}
			},
		},
		{
			name:  "rename",
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", false) },
			act: func(t *testing.T, e env) {
				must(t, "rename lw0", e.nl.LinkSetName(mustLink(t, e, "lw0"), "lw1"))
			},
			notify: true,
			check: func(t *testing.T, before, after map[string]Link) {
				if _, ok := after["lw0"]; ok {
					t.Errorf("old name lw0 still in the view")
				}
				if l, ok := after["lw1"]; !ok || l.Index != before["lw0"].Index {
					t.Errorf("lw1 = %+v, %v; want index %d", l, ok, before["lw0"].Index)
				}
			},
		},
		{
			name:  "up",
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", false) },
			act: func(t *testing.T, e env) {
				must(t, "set lw0 up", e.nl.LinkSetUp(mustLink(t, e, "lw0")))
			},
			notify: true,
			check: func(t *testing.T, before, after map[string]Link) {
				if before["lw0"].Up || !after["lw0"].Up {
					t.Errorf("up: before %v, after %v; want false, true", before["lw0"].Up, after["lw0"].Up)
				}
			},
		},
		{
			name:  "down",
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", true) },
			act: func(t *testing.T, e env) {
				must(t, "set lw0 down", e.nl.LinkSetDown(mustLink(t, e, "lw0")))
			},
			notify: true,
			check: func(t *testing.T, before, after map[string]Link) {
				if !before["lw0"].Up || after["lw0"].Up {
					t.Errorf("up: before %v, after %v; want true, false", before["lw0"].Up, after["lw0"].Up)
				}
			},
		},
		{
			name:  "mtu",
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", true) },
			act: func(t *testing.T, e env) {
				must(t, "set lw0 mtu", e.nl.LinkSetMTU(mustLink(t, e, "lw0"), 9000))
			},
			notify: true,
			check: func(t *testing.T, before, after map[string]Link) {
				if after["lw0"].MTU != 9000 {
					t.Errorf("mtu = %d, want 9000", after["lw0"].MTU)
				}
			},
		},
		{
			name: "duplicate events",
			// Alias and queue length are not part of a Link: the kernel
			// sends RTM_NEWLINK with the same Link each time.
			setup: func(t *testing.T, e env) { mustAddLink(t, e, "lw0", true) },
			act: func(t *testing.T, e env) {
				l := mustLink(t, e, "lw0")
				must(t, "set lw0 alias", e.nl.LinkSetAlias(l, "duplicate"))
				must(t, "set lw0 txqlen", e.nl.LinkSetTxQLen(l, 42))
				must(t, "set lw0 up again", e.nl.LinkSetUp(l))
			},
			notify: false,
		},
		{
			name: "bridge port leaves",
			// The kernel sends an AF_BRIDGE RTM_DELLINK for the port; the
			// port is not deleted.
			setup: func(t *testing.T, e env) {
				br := netlink.NewLinkAttrs()
				br.Name = "lwbr"
				must(t, "add bridge", e.nl.LinkAdd(&netlink.Bridge{LinkAttrs: br}))
				mustAddLink(t, e, "lw0", true)
				must(t, "enslave lw0", e.nl.LinkSetMaster(mustLink(t, e, "lw0"), mustLink(t, e, "lwbr")))
			},
			act: func(t *testing.T, e env) {
				must(t, "release lw0", e.nl.LinkSetNoMaster(mustLink(t, e, "lw0")))
			},
			notify: false,
			check: func(t *testing.T, before, after map[string]Link) {
				if _, ok := after["lw0"]; !ok {
					t.Errorf("lw0 gone from the view after leaving the bridge")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEnv(t)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			s := mustStart(t, e, Options{})
			ch, unsubscribe := s.Subscribe()
			defer unsubscribe()
			before, _ := mustMatchKernel(t, e, s.Watcher)
			mustSentinel(t, e, s) // the initial listing is applied
			drain(ch)

			tc.act(t, e)
			if tc.notify {
				mustNotified(t, ch)
			} else {
				mustSentinel(t, e, s)
				select {
				case <-ch:
					t.Errorf("notified, but the view did not change")
				default:
				}
			}
			after, _ := mustMatchKernel(t, e, s.Watcher)
			for name, want := range after {
				if got, ok := s.Lookup(name); !ok || got != want {
					t.Errorf("Lookup(%q) = %+v, %v; want %+v, true", name, got, ok, want)
				}
			}
			if tc.check != nil {
				tc.check(t, before, after)
			}
		})
	}
}

// TestInitialListingDoesNotNotify: the subscription's own listing repeats
// the first dump; only the dump notifies.
func TestInitialListingDoesNotNotify(t *testing.T) {
	e := mustEnv(t)
	mustAddLink(t, e, "lw0", true)
	w := New(Options{NetNS: e.host.NSPath, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	ch, unsubscribe := w.Subscribe()
	defer unsubscribe()
	if w.Synced() || len(w.Links()) != 0 {
		t.Fatalf("before Run: synced %v, %d links; want false, 0", w.Synced(), len(w.Links()))
	}
	s := mustStartWatcher(t, e, w)
	mustNotified(t, ch)
	mustSentinel(t, e, s)
	select {
	case <-ch:
		t.Errorf("notified again by the subscription's listing")
	default:
	}
	if st := s.Stats(); st.Events < uint64(len(mustDump(t, e))) {
		t.Errorf("events = %d, want at least one per link from the listing", st.Events)
	}
}

func TestRunTwice(t *testing.T) {
	e := mustEnv(t)
	s := mustStart(t, e, Options{})
	if err := s.Run(t.Context()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}
