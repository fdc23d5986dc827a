package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func testInstallKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	k1 := store.InstallKey{Hash: store.HashSecret("one"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), Note: "rack 1"}
	k2 := store.InstallKey{Hash: store.HashSecret("two"), CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(2 * time.Hour)}
	mustNoError(t, s.CreateInstallKey(ctx, k1), "create key 1")
	mustNoError(t, s.CreateInstallKey(ctx, k2), "create key 2")
	mustErrorIs(t, s.CreateInstallKey(ctx, k1), store.ErrExists, "create key 1 again")
	mustErrorIs(t, s.CreateInstallKey(ctx, store.InstallKey{ExpiresAt: t0}), store.ErrInvalid, "create a key without hash")
	mustErrorIs(t, s.CreateInstallKey(ctx, store.InstallKey{Hash: store.HashSecret("three")}), store.ErrInvalid, "create a key without expiry")

	got, err := s.ListInstallKeys(ctx)
	mustNoError(t, err, "list keys")
	if diff := cmp.Diff([]store.InstallKey{k2, k1}, got, cmpOpts...); diff != "" {
		t.Errorf("keys, newest first (-want +got):\n%s", diff)
	}

	e, _, err := s.ConsumeInstallKey(ctx, k1.Hash, candidate("h1", "m1", "pub1", t0), t0.Add(time.Second))
	mustNoError(t, err, "consume key 1")
	got, err = s.ListInstallKeys(ctx)
	mustNoError(t, err, "list keys")
	k1.UsedAt, k1.UsedBy, k1.DeviceID = t0.Add(time.Second), fingerprint("pub1"), e.Device.ID
	if diff := cmp.Diff([]store.InstallKey{k2, k1}, got, cmpOpts...); diff != "" {
		t.Errorf("keys after consuming key 1 (-want +got):\n%s", diff)
	}
}

func testConsume(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Minute)
	h := mustKey(t, s, t0)
	cand := candidate("sensor-1", "m1", "pub", now)

	_, _, err := s.ConsumeInstallKey(ctx, store.HashSecret("no such key"), cand, now)
	mustErrorIs(t, err, store.ErrNotFound, "consume an unknown key")
	bad := cand
	bad.Certificate.DeviceID = "other"
	_, _, err = s.ConsumeInstallKey(ctx, h, bad, now)
	mustErrorIs(t, err, store.ErrInvalid, "consume with a certificate of another device")
	bad = cand
	bad.Certificate.PublicKeyFingerprint = ""
	_, _, err = s.ConsumeInstallKey(ctx, h, bad, now)
	mustErrorIs(t, err, store.ErrInvalid, "consume without fingerprint")

	got, replayed, err := s.ConsumeInstallKey(ctx, h, cand, now)
	mustNoError(t, err, "consume")
	if replayed {
		t.Error("first use reported as a replay")
	}
	want := cand
	want.Device.EnrolledAt = now
	want.Device.CertSerial, want.Device.CertNotAfter = cand.Certificate.Serial, cand.Certificate.NotAfter
	want.Device.State = store.StateStale // no heartbeat yet
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("enrollment (-want +got):\n%s", diff)
	}
	d, err := s.GetDevice(ctx, cand.Device.ID, now)
	mustNoError(t, err, "get the device")
	if diff := cmp.Diff(want.Device, d, cmpOpts...); diff != "" {
		t.Errorf("device (-want +got):\n%s", diff)
	}
	c, err := s.GetCertificate(ctx, cand.Certificate.Serial)
	mustNoError(t, err, "get the certificate")
	if diff := cmp.Diff(cand.Certificate, c, cmpOpts...); diff != "" {
		t.Errorf("certificate (-want +got):\n%s", diff)
	}
	dc, err := s.GetCaptures(ctx, cand.Device.ID)
	mustNoError(t, err, "get the captures")
	if dc.Generation != 0 || len(dc.Captures) != 0 || !dc.UpdatedAt.IsZero() {
		t.Errorf("desired config of a new device: %+v, want generation 0 and no captures", dc)
	}

	_, _, err = s.ConsumeInstallKey(ctx, h, candidate("sensor-2", "m2", "another pub", now), now.Add(time.Second))
	mustErrorIs(t, err, store.ErrKeyUsed, "consume a used key with another public key")

	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"at expiry", t0.Add(time.Hour)},
		{"after expiry", t0.Add(2 * time.Hour)},
	} {
		t.Run("expired "+tc.name, func(t *testing.T) {
			h := mustKey(t, s, t0)
			_, _, err := s.ConsumeInstallKey(ctx, h, candidate("late", "m3", "late pub", tc.at), tc.at)
			mustErrorIs(t, err, store.ErrKeyExpired, "consume "+tc.name)
		})
	}
}

func testConsumeRetry(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := mustKey(t, s, t0)
	first := candidate("sensor", "m1", "pub", t0)
	used := t0.Add(50 * time.Minute) // 10 minutes before the key expires
	got, _, err := s.ConsumeInstallKey(ctx, h, first, used)
	mustNoError(t, err, "consume")

	tests := []struct {
		name    string
		pub     string
		at      time.Time
		wantErr error
	}{
		{"same key at once", "pub", used, nil},
		{"same key within the window, past the key's expiry", "pub", used.Add(store.EnrollRetryWindow - time.Second), nil},
		{"same key at the window's end", "pub", used.Add(store.EnrollRetryWindow), nil},
		{"same key after the window", "pub", used.Add(store.EnrollRetryWindow + time.Second), store.ErrKeyUsed},
		{"another key within the window", "other", used.Add(time.Second), store.ErrKeyUsed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry := candidate("sensor", "m1", tt.pub, tt.at) // a new device id and serial, as the console makes
			again, replayed, err := s.ConsumeInstallKey(ctx, h, retry, tt.at)
			if tt.wantErr != nil {
				mustErrorIs(t, err, tt.wantErr, "retry")
				return
			}
			mustNoError(t, err, "retry")
			if !replayed {
				t.Error("retry not reported as a replay")
			}
			want := got
			want.Device.State = again.Device.State
			if diff := cmp.Diff(want, again, cmpOpts...); diff != "" {
				t.Errorf("retry got another enrollment (-first +retry):\n%s", diff)
			}
			if _, err := s.GetDevice(ctx, retry.Device.ID, tt.at); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the retry's candidate device was stored: %v", err)
			}
		})
	}
	ds, err := s.ListDevices(ctx, used)
	mustNoError(t, err, "list devices")
	if len(ds) != 1 {
		t.Errorf("%d devices after retries, want 1", len(ds))
	}

	t.Run("revoked since", func(t *testing.T) {
		_, err := s.RevokeDevice(ctx, got.Device.ID, used.Add(time.Minute))
		mustNoError(t, err, "revoke")
		_, _, err = s.ConsumeInstallKey(ctx, h, candidate("sensor", "m1", "pub", used), used.Add(2*time.Minute))
		mustErrorIs(t, err, store.ErrRevoked, "retry after revocation")
	})
}

// testConsumeConflicts: a candidate whose device id or serial is taken
// is refused and leaves the key unused.
func testConsumeConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := mustEnroll(t, s, "first", "m1", t0)
	h := mustKey(t, s, t0)

	sameID := candidate("second", "m2", "pub2", t0)
	sameID.Device.ID = e.Device.ID
	sameID.Certificate.DeviceID = e.Device.ID
	_, _, err := s.ConsumeInstallKey(ctx, h, sameID, t0)
	mustErrorIs(t, err, store.ErrExists, "enroll with a device id taken")

	sameSerial := candidate("second", "m2", "pub2", t0)
	sameSerial.Certificate.Serial = e.Certificate.Serial
	_, _, err = s.ConsumeInstallKey(ctx, h, sameSerial, t0)
	mustErrorIs(t, err, store.ErrExists, "enroll with a serial taken")

	// Nothing was burnt: the key enrolls another public key still.
	_, replayed, err := s.ConsumeInstallKey(ctx, h, candidate("second", "m2", "pub3", t0), t0)
	mustNoError(t, err, "enroll after the conflicts")
	if replayed {
		t.Error("a fresh enrollment reported as a replay")
	}
}

// raceN is how many enrollments race for one key.
const raceN = 16

// testConsumeRace: of raceN public keys racing for one key, exactly one
// enrolls.
func testConsumeRace(t *testing.T, s store.Store) {
	mustRace(t, []store.Store{s}, false)
}

// testConsumeRaceSameKey: raceN retries of one public key racing all get
// the one enrollment.
func testConsumeRaceSameKey(t *testing.T, s store.Store) {
	mustRace(t, []store.Store{s}, true)
}

// mustRace races raceN enrollments through stores (in turn) for one key:
// with different public keys one wins and the others get ErrKeyUsed; with
// the same public key all get the same device, one of them fresh.
func mustRace(t *testing.T, stores []store.Store, samePub bool) {
	t.Helper()
	ctx := context.Background()
	h := mustKey(t, stores[0], t0)
	before, err := stores[0].ListDevices(ctx, t0)
	mustNoError(t, err, "list devices")
	type result struct {
		e        store.Enrollment
		replayed bool
		err      error
	}
	results := make([]result, raceN)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range raceN {
		pub := unique("racer")
		if samePub {
			pub = "the one key"
		}
		cand := candidate(unique("host"), "m", pub, t0)
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			e, replayed, err := s.ConsumeInstallKey(ctx, h, cand, t0.Add(time.Second))
			results[i] = result{e, replayed, err}
		})
	}
	close(start)
	wg.Wait()

	var fresh, replays int
	devices := map[string]bool{}
	for i, r := range results {
		switch {
		case r.err == nil && r.replayed:
			replays++
			devices[r.e.Device.ID] = true
		case r.err == nil:
			fresh++
			devices[r.e.Device.ID] = true
		case !samePub && errors.Is(r.err, store.ErrKeyUsed):
		default:
			t.Errorf("racer %d: %v", i, r.err)
		}
	}
	if fresh != 1 {
		t.Errorf("%d racers enrolled, want exactly 1", fresh)
	}
	if samePub && replays != raceN-1 {
		t.Errorf("%d racers got the enrollment replayed, want %d", replays, raceN-1)
	}
	if !samePub && replays != 0 {
		t.Errorf("%d racers with another public key got a replay, want 0", replays)
	}
	if len(devices) != 1 {
		t.Errorf("racers got %d devices, want 1", len(devices))
	}
	after, err := stores[0].ListDevices(ctx, t0)
	mustNoError(t, err, "list devices")
	if n := len(after) - len(before); n != 1 {
		t.Errorf("%d devices stored, want 1", n)
	}
}
