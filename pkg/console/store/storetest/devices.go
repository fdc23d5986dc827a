package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func testDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetDevice(ctx, "nosuchdevice", t0)
	mustErrorIs(t, err, store.ErrNotFound, "get an unknown device")
	ds, err := s.ListDevices(ctx, t0)
	mustNoError(t, err, "list no devices")
	if len(ds) != 0 {
		t.Errorf("list of an empty store: %d devices", len(ds))
	}

	b := mustEnroll(t, s, "bravo", "m-b", t0)
	a := mustEnroll(t, s, "alpha", "m-a", t0.Add(time.Second))
	c := mustEnroll(t, s, "charlie", "m-c", t0.Add(2*time.Second))
	ds, err = s.ListDevices(ctx, t0.Add(time.Hour))
	mustNoError(t, err, "list devices")
	var got []string
	for _, d := range ds {
		got = append(got, d.Hostname)
	}
	if diff := cmp.Diff([]string{"alpha", "bravo", "charlie"}, got); diff != "" {
		t.Errorf("devices by hostname (-want +got):\n%s", diff)
	}
	for _, e := range []store.Enrollment{a, b, c} {
		d, err := s.GetDevice(ctx, e.Device.ID, t0)
		mustNoError(t, err, "get device")
		if diff := cmp.Diff(e.Device, d, cmpOpts...); diff != "" {
			t.Errorf("device %s (-enrolled +got):\n%s", e.Device.Hostname, diff)
		}
	}
}

// mustHeartbeat sends a heartbeat of device at now.
func mustHeartbeat(t *testing.T, s store.Store, device string, now time.Time) {
	t.Helper()
	mustNoError(t, s.PutStatus(context.Background(), device, store.Status{Time: now, Document: json.RawMessage(`{}`)}), "heartbeat")
}

func testDeviceStates(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := mustEnroll(t, s, "sensor", "m1", t0)
	id := e.Device.ID
	hb := t0.Add(time.Minute)
	steps := []struct {
		name      string
		heartbeat bool // at hb
		revoke    bool // at hb + 1h
		at        time.Time
		want      store.State
	}{
		{name: "enrolled, never heard from", at: t0, want: store.StateStale},
		{name: "just after a heartbeat", heartbeat: true, at: hb, want: store.StateOnline},
		{name: "StaleAfter after it", at: hb.Add(StaleAfter), want: store.StateOnline},
		{name: "just past StaleAfter", at: hb.Add(StaleAfter + time.Microsecond), want: store.StateStale},
		{name: "long after", at: hb.Add(24 * time.Hour), want: store.StateStale},
		{name: "revoked", revoke: true, at: hb.Add(time.Hour), want: store.StateRevoked},
		{name: "revoked, at a time it was online", at: hb, want: store.StateRevoked},
	}
	for _, st := range steps {
		if st.heartbeat {
			mustHeartbeat(t, s, id, hb)
		}
		if st.revoke {
			_, err := s.RevokeDevice(ctx, id, hb.Add(time.Hour))
			mustNoError(t, err, "revoke")
		}
		d, err := s.GetDevice(ctx, id, st.at)
		mustNoError(t, err, "get device")
		if d.State != st.want {
			t.Errorf("%s: state %s, want %s", st.name, d.State, st.want)
		}
		ds, err := s.ListDevices(ctx, st.at)
		mustNoError(t, err, "list devices")
		if len(ds) != 1 || ds[0].State != st.want {
			t.Errorf("%s: listed %+v, want one device %s", st.name, ds, st.want)
		}
	}
}

func testDuplicateMachineIDs(t *testing.T, s store.Store) {
	ctx := context.Background()
	dups, err := s.DuplicateMachineIDs(ctx)
	mustNoError(t, err, "duplicates of an empty store")
	if len(dups) != 0 {
		t.Errorf("duplicates of an empty store: %+v", dups)
	}
	// Cloned VMs: three share a machine id, two another; two have none.
	clone1 := mustEnroll(t, s, "clone", "cloned", t0)
	clone2 := mustEnroll(t, s, "clone", "cloned", t0.Add(time.Second))
	clone3 := mustEnroll(t, s, "clone", "cloned", t0.Add(2*time.Second))
	twinA := mustEnroll(t, s, "twin-a", "twin", t0.Add(3*time.Second))
	twinB := mustEnroll(t, s, "twin-b", "twin", t0.Add(4*time.Second))
	mustEnroll(t, s, "single", "single", t0)
	mustEnroll(t, s, "nomid-1", "", t0)
	mustEnroll(t, s, "nomid-2", "", t0)

	ids := map[string]bool{}
	for _, e := range []store.Enrollment{clone1, clone2, clone3} {
		ids[e.Device.ID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("three agents with one machine id got %d devices, want 3", len(ids))
	}
	dups, err = s.DuplicateMachineIDs(ctx)
	mustNoError(t, err, "duplicates")
	want := []store.Duplicate{
		{MachineID: "cloned", DeviceIDs: []string{clone1.Device.ID, clone2.Device.ID, clone3.Device.ID}},
		{MachineID: "twin", DeviceIDs: []string{twinA.Device.ID, twinB.Device.ID}},
	}
	if diff := cmp.Diff(want, dups); diff != "" {
		t.Errorf("duplicates (-want +got):\n%s", diff)
	}

	// A revoked device is no longer a duplicate.
	_, err = s.RevokeDevice(ctx, twinA.Device.ID, t0.Add(time.Hour))
	mustNoError(t, err, "revoke a twin")
	_, err = s.RevokeDevice(ctx, clone2.Device.ID, t0.Add(time.Hour))
	mustNoError(t, err, "revoke a clone")
	dups, err = s.DuplicateMachineIDs(ctx)
	mustNoError(t, err, "duplicates after revocations")
	want = []store.Duplicate{{MachineID: "cloned", DeviceIDs: []string{clone1.Device.ID, clone3.Device.ID}}}
	if diff := cmp.Diff(want, dups); diff != "" {
		t.Errorf("duplicates after revocations (-want +got):\n%s", diff)
	}
}

func testRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.RevokeDevice(ctx, "nosuchdevice", t0)
	mustErrorIs(t, err, store.ErrNotFound, "revoke an unknown device")

	e := mustEnroll(t, s, "sensor", "m1", t0)
	other := mustEnroll(t, s, "other", "m2", t0)
	id := e.Device.ID
	_, err = s.PutCaptures(ctx, id, 0, []store.Capture{{Name: "web", Interface: "eth0", Output: store.Output{Dir: "/var/lib/ringtap/web"}}}, t0)
	mustNoError(t, err, "put captures")
	mustHeartbeat(t, s, id, t0.Add(time.Second))

	revokedAt := t0.Add(time.Hour)
	d, err := s.RevokeDevice(ctx, id, revokedAt)
	mustNoError(t, err, "revoke")
	if !d.RevokedAt.Equal(revokedAt) || d.State != store.StateRevoked {
		t.Errorf("revoked device: revoked_at %v state %s, want %v revoked", d.RevokedAt, d.State, revokedAt)
	}
	d, err = s.RevokeDevice(ctx, id, revokedAt.Add(time.Hour))
	mustNoError(t, err, "revoke again")
	if !d.RevokedAt.Equal(revokedAt) {
		t.Errorf("revoking again moved revoked_at to %v, want %v", d.RevokedAt, revokedAt)
	}

	c, err := s.GetCertificate(ctx, e.Certificate.Serial)
	mustErrorIs(t, err, store.ErrRevoked, "get a revoked device's certificate")
	if c.DeviceID != id {
		t.Errorf("the revoked certificate names device %q, want %q", c.DeviceID, id)
	}
	_, err = s.PutCaptures(ctx, id, 1, nil, revokedAt)
	mustErrorIs(t, err, store.ErrRevoked, "put captures of a revoked device")
	mustErrorIs(t, s.PutStatus(ctx, id, store.Status{Time: revokedAt, Document: json.RawMessage(`{}`)}), store.ErrRevoked, "heartbeat of a revoked device")
	renewed := e.Certificate
	renewed.Serial = unique("serial")
	mustErrorIs(t, s.RenewCertificate(ctx, renewed), store.ErrRevoked, "renew a revoked device's certificate")
	_, err = s.WaitForChange(ctx, id, 0)
	mustErrorIs(t, err, store.ErrRevoked, "wait for a revoked device")

	// What it had is still readable, for the admin.
	dc, err := s.GetCaptures(ctx, id)
	mustNoError(t, err, "get a revoked device's captures")
	if dc.Generation != 1 {
		t.Errorf("revoked device's generation %d, want 1", dc.Generation)
	}
	_, err = s.GetStatus(ctx, id)
	mustNoError(t, err, "get a revoked device's status")

	// The other device is untouched.
	_, err = s.GetCertificate(ctx, other.Certificate.Serial)
	mustNoError(t, err, "get the other device's certificate")
	d, err = s.GetDevice(ctx, other.Device.ID, t0)
	mustNoError(t, err, "get the other device")
	if !d.RevokedAt.IsZero() {
		t.Error("revoking one device revoked another")
	}
}
