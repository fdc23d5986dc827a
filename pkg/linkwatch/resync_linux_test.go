package linkwatch

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPeriodicResync corrupts the view behind the Watcher's back (as lost
// events would) and checks that the periodic dump repairs it and notifies.
// Only a dump can remove the ghost link: no event will ever name its index.
func TestPeriodicResync(t *testing.T) {
	const period = 200 * time.Millisecond
	e := mustEnv(t)
	mustAddLink(t, e, "lw0", true)
	s := mustStart(t, e, Options{Resync: period})
	want, _ := mustMatchKernel(t, e, s.Watcher)
	ch, unsubscribe := s.Subscribe()
	defer unsubscribe()
	resyncs := s.Stats().Resyncs

	s.mu.Lock()
	s.view.set(Link{Name: "ghost", Index: 1 << 20})
	s.view.remove(want["lw0"].Index)
	s.mu.Unlock()
	start := time.Now()

	timeout := time.After(waitFor)
	for {
		if _, ok := s.Lookup("ghost"); !ok {
			break
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("ghost link still in the view after %v", waitFor)
		}
	}
	t.Logf("periodic resync (every %v) repaired the view %v after the corruption", period, time.Since(start))
	if diff := cmp.Diff(mustDump(t, e), s.Links()); diff != "" {
		t.Errorf("view after the resync (-kernel +view):\n%s", diff)
	}
	if got := s.Stats().Resyncs; got <= resyncs {
		t.Errorf("resyncs = %d, want more than %d", got, resyncs)
	}
}
