package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func testWaitForChange(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.WaitForChange(ctx, "nosuchdevice", 0)
	mustErrorIs(t, err, store.ErrNotFound, "wait for an unknown device")

	e := mustEnroll(t, s, "sensor", "m1", t0)
	id := e.Device.ID
	_, err = s.PutCaptures(ctx, id, 0, []store.Capture{monitorCapture}, t0)
	mustNoError(t, err, "put captures")

	// A newer generation exists: at once.
	dc, err := s.WaitForChange(ctx, id, 0)
	mustNoError(t, err, "wait behind")
	if dc.Generation != 1 || len(dc.Captures) != 1 {
		t.Errorf("wait behind returned %+v, want generation 1", dc)
	}
	// An agent ahead of the console (a restored database) gets it too.
	dc, err = s.WaitForChange(ctx, id, -1)
	mustNoError(t, err, "wait from -1")
	if dc.Generation != 1 {
		t.Errorf("wait from -1 returned generation %d, want 1", dc.Generation)
	}

	// Up to date: until the context ends.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.WaitForChange(short, id, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait up to date: got %v, want the context's deadline", err)
	}
}

func testWaitForChangeWakes(t *testing.T, s store.Store) {
	mustWakeAcross(t, s, s)
}

// mustWakeAcross waits through b while the config changes through a: the
// waiter wakes within WakeWithin with the new generation; a change of
// another device does not wake it.
func mustWakeAcross(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := mustEnroll(t, a, "sensor", "m1", t0)
	other := mustEnroll(t, a, "other", "m2", t0)

	for gen := int64(0); gen < 3; gen++ {
		ch := goWait(ctx, b, e.Device.ID, gen)
		mustStillWaiting(t, ch, 100*time.Millisecond)
		_, err := a.PutCaptures(ctx, other.Device.ID, store.AnyGeneration, []store.Capture{monitorCapture}, t0)
		mustNoError(t, err, "put captures of the other device")
		mustStillWaiting(t, ch, 100*time.Millisecond)

		changed := time.Now()
		_, err = a.PutCaptures(ctx, e.Device.ID, gen, []store.Capture{fullCapture}, t0)
		mustNoError(t, err, "put captures")
		r := mustWake(t, ch, changed)
		mustNoError(t, r.err, "wait")
		if r.dc.Generation != gen+1 || len(r.dc.Captures) != 1 || r.dc.Captures[0].Name != fullCapture.Name {
			t.Errorf("woken with %+v, want generation %d with capture %s", r.dc, gen+1, fullCapture.Name)
		}
	}
}

func testWaitForChangeRevoked(t *testing.T, s store.Store) {
	mustRevokeWakes(t, s, s)
}

// mustRevokeWakes waits through b while the device is revoked through a:
// the waiter returns ErrRevoked within WakeWithin.
func mustRevokeWakes(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := mustEnroll(t, a, "sensor", "m1", t0)
	ch := goWait(ctx, b, e.Device.ID, 0)
	mustStillWaiting(t, ch, 100*time.Millisecond)
	revoked := time.Now()
	_, err := a.RevokeDevice(ctx, e.Device.ID, t0)
	mustNoError(t, err, "revoke")
	r := mustWake(t, ch, revoked)
	mustErrorIs(t, r.err, store.ErrRevoked, "wait for a device revoked meanwhile")
}

func testClose(t *testing.T, s store.Store) {
	e := mustEnroll(t, s, "sensor", "m1", t0)
	ch := goWait(context.Background(), s, e.Device.ID, 0)
	mustStillWaiting(t, ch, 100*time.Millisecond)
	closed := time.Now()
	mustNoError(t, s.Close(), "close")
	r := mustWake(t, ch, closed)
	mustErrorIs(t, r.err, store.ErrClosed, "wait ended by close")
	mustNoError(t, s.Close(), "close again")
	_, err := s.WaitForChange(context.Background(), e.Device.ID, 0)
	mustErrorIs(t, err, store.ErrClosed, "wait after close")
}
