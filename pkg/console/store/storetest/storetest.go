package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// Open returns a new, empty Store for t; t's cleanup closes it.
type Open func(t *testing.T) store.Store

// OpenShared returns two new Stores on one new, empty database, as two
// console processes would have; t's cleanup closes them.
type OpenShared func(t *testing.T) (a, b store.Store)

// WakeWithin is how soon a change must reach a waiter.
const WakeWithin = time.Second

// StaleAfter is the store.Options.StaleAfter the suite expects the Stores
// to be opened with.
const StaleAfter = 30 * time.Second

// t0 is the suite's clock: times are given, never read.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// Run runs the suite on Stores from open, which must apply
// store.Options{StaleAfter: StaleAfter}.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"AdminTokens", testAdminTokens},
		{"InstallKeys", testInstallKeys},
		{"Consume", testConsume},
		{"ConsumeRetry", testConsumeRetry},
		{"ConsumeConflicts", testConsumeConflicts},
		{"ConsumeRace", testConsumeRace},
		{"ConsumeRaceSameKey", testConsumeRaceSameKey},
		{"Devices", testDevices},
		{"DeviceStates", testDeviceStates},
		{"DuplicateMachineIDs", testDuplicateMachineIDs},
		{"Revoke", testRevoke},
		{"Certificates", testCertificates},
		{"Captures", testCaptures},
		{"CapturesRace", testCapturesRace},
		{"Status", testStatus},
		{"ListStatuses", testListStatuses},
		{"TimePrecision", testTimePrecision},
		{"WaitForChange", testWaitForChange},
		{"WaitForChangeWakes", testWaitForChangeWakes},
		{"WaitForChangeRevoked", testWaitForChangeRevoked},
		{"Jobs", testJobs},
		{"CreateJobRefused", testCreateJobRefused},
		{"ClaimRun", testClaimRun},
		{"RunLife", testRunLife},
		{"RunTransitions", testRunTransitions},
		{"CancelJob", testCancelJob},
		{"CancelClaimRace", testCancelClaimRace},
		{"ExpireRuns", testExpireRuns},
		{"FailSilentRuns", testFailSilentRuns},
		{"AttachResult", testAttachResult},
		{"DeviceRuns", testDeviceRuns},
		{"JobsSeq", testJobsSeq},
		{"JobsWake", testJobsWake},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// RunShared runs the tests of two consoles on one database.
func RunShared(t *testing.T, open OpenShared) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"ChangeWakesOtherConsole", testSharedWake},
		{"RevokeWakesOtherConsole", testSharedRevoke},
		{"ConsumeRace", testSharedConsumeRace},
		{"StaleGeneration", testSharedStaleGeneration},
		{"TokensRace", testSharedTokensRace},
		{"JobsWakeOtherConsole", testSharedJobsWake},
		{"ClaimRace", testSharedClaimRace},
		{"EndRunsRace", testSharedEndRunsRace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			tt.fn(t, a, b)
		})
	}
}

// cmpOpts compare stored records: empty and nil slices alike.
var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

func mustNoError(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// mustErrorIs checks that err wraps want.
func mustErrorIs(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

var seq atomic.Int64

// unique returns a name no other call returns.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// fingerprint is a public key fingerprint for name.
func fingerprint(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// candidate is an enrollment as the console builds it before consuming a
// key: a new device id and a certificate for the public key pub.
func candidate(host, machineID, pub string, now time.Time) store.Enrollment {
	id := store.NewID()
	serial := unique("serial")
	return store.Enrollment{
		Device: store.Device{
			ID: id, Hostname: host, MachineID: machineID, AgentVersion: "v1.0.0",
			Interfaces: []string{"eth0", "lo"},
		},
		Certificate: store.Certificate{
			Serial: serial, DeviceID: id, PublicKeyFingerprint: fingerprint(pub),
			NotBefore: now, NotAfter: now.Add(30 * 24 * time.Hour), DER: []byte("der of " + serial),
		},
	}
}

// mustKey creates an install key valid for an hour from now and returns
// its hash.
func mustKey(t *testing.T, s store.Store, now time.Time) store.Hash {
	t.Helper()
	h := store.HashSecret(store.NewSecret())
	mustNoError(t, s.CreateInstallKey(context.Background(), store.InstallKey{Hash: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}), "create install key")
	return h
}

// mustEnroll enrolls a device with a new key at now.
func mustEnroll(t *testing.T, s store.Store, host, machineID string, now time.Time) store.Enrollment {
	t.Helper()
	h := mustKey(t, s, now)
	e, replayed, err := s.ConsumeInstallKey(context.Background(), h, candidate(host, machineID, unique("key"), now), now)
	mustNoError(t, err, "enroll "+host)
	if replayed {
		t.Fatalf("enroll %s: replayed a fresh key", host)
	}
	return e
}

// goWait runs WaitForChange in a goroutine; the channel gets its result.
func goWait(ctx context.Context, s store.Store, device string, after int64) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		dc, err := s.WaitForChange(ctx, device, after)
		ch <- waitResult{dc, err, time.Now()}
	}()
	return ch
}

type waitResult struct {
	dc  store.DesiredConfig
	err error
	at  time.Time
}

// mustWake checks that a waiter returns within WakeWithin of since.
func mustWake(t *testing.T, ch <-chan waitResult, since time.Time) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		if d := r.at.Sub(since); d > WakeWithin {
			t.Fatalf("waiter woke %v after the change, want within %v", d, WakeWithin)
		}
		t.Logf("waiter woke %v after the change", r.at.Sub(since))
		return r
	case <-time.After(5 * WakeWithin):
		t.Fatalf("waiter did not wake within %v of the change", 5*WakeWithin)
		return waitResult{}
	}
}

// mustStillWaiting checks that a waiter has not returned yet.
func mustStillWaiting(t *testing.T, ch <-chan waitResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("waiter returned early: %+v", r)
	case <-time.After(d):
	}
}
