package pcapmgr_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/linkwatch"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
	"github.com/ringtap/ringtap/pkg/storage"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func desired(t *testing.T, dir, link string, n int, key string) []pcapmgr.Desired {
	t.Helper()
	var out []pcapmgr.Desired
	for i := range n {
		name := fmt.Sprintf("c%d", i)
		out = append(out, pcapmgr.Desired{
			Name: name, Interface: link, Key: key + name,
			Spec:    capture.Spec{Hook: capture.HookTC, SnapLen: 128},
			Storage: storage.Options{Dir: filepath.Join(dir, name)},
		})
	}
	return out
}

func waitAll(t *testing.T, m *pcapmgr.Manager, state string, n int) []agent.CaptureStatus {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := m.Captures()
		ok := len(st) == n
		for _, c := range st {
			ok = ok && c.State == state
		}
		if ok {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("captures not all %s: %+v", state, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reconciling is level-triggered: the same desired set applied again
// changes nothing, one association never runs twice, and a change of one
// capture restarts that one only.
func TestReconcileLevelTriggered(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	e, err := capture.NewEngine(capture.EngineOptions{NetNS: pair.B.NSPath, RingSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	lw := linkwatch.New(linkwatch.Options{NetNS: pair.B.NSPath})
	m := pcapmgr.New(pcapmgr.Options{Engine: e, Links: lw})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- lw.Run(ctx) }()
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()
	dir := t.TempDir()
	ds := desired(t, dir, pair.B.Link, 5, "v1")
	if err := m.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	first := waitAll(t, m, agent.CaptureRunning, 5)
	for range 3 {
		if err := m.Apply(ctx, desired(t, dir, pair.B.Link, 5, "v1")); err != nil {
			t.Fatal(err)
		}
	}
	again := waitAll(t, m, agent.CaptureRunning, 5)
	for i := range first {
		if first[i].CurrentFile != again[i].CurrentFile || !first[i].Since.Equal(again[i].Since) {
			t.Errorf("capture %s was restarted by applying the same set: %+v then %+v", first[i].Name, first[i], again[i])
		}
	}
	if info := e.Interfaces(); len(info) != 1 || info[0].Captures != 5 {
		t.Fatalf("engine holds %+v, want 5 captures on one interface", info)
	}
	// Change c2 only.
	ds = desired(t, dir, pair.B.Link, 5, "v1")
	ds[2].Key, ds[2].Spec.SnapLen = "v2c2", 64
	if err := m.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	changed := waitAll(t, m, agent.CaptureRunning, 5)
	for i := range first {
		restarted := first[i].CurrentFile != changed[i].CurrentFile
		if restarted != (i == 2) {
			t.Errorf("capture %s restarted %v after a change of c2 only", first[i].Name, restarted)
		}
	}
	if info := e.Interfaces(); len(info) != 1 || info[0].Captures != 5 {
		t.Fatalf("engine holds %+v after the change, want 5 captures", info)
	}
	// Remove all: nothing left on the interface.
	if err := m.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if info := e.Interfaces(); len(info) != 0 {
		t.Fatalf("engine still holds %+v with no capture desired", info)
	}
}
