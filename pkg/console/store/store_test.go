package store_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func TestStateAt(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const stale = 30 * time.Second
	tests := []struct {
		name string
		d    store.Device
		now  time.Time
		want store.State
	}{
		{"never heard from", store.Device{}, t0, store.StateStale},
		{"just heard from", store.Device{LastHeartbeat: t0}, t0, store.StateOnline},
		{"heartbeat from a clock ahead", store.Device{LastHeartbeat: t0.Add(time.Second)}, t0, store.StateOnline},
		{"at the stale limit", store.Device{LastHeartbeat: t0}, t0.Add(stale), store.StateOnline},
		{"past the stale limit", store.Device{LastHeartbeat: t0}, t0.Add(stale + time.Nanosecond), store.StateStale},
		{"revoked and online", store.Device{LastHeartbeat: t0, RevokedAt: t0}, t0, store.StateRevoked},
		{"revoked and stale", store.Device{RevokedAt: t0}, t0.Add(time.Hour), store.StateRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.StateAt(tt.now, stale); got != tt.want {
				t.Errorf("state %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	safe := regexp.MustCompile(`^[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := store.NewID()
		if !safe.MatchString(id) {
			t.Fatalf("id %q is not 26 characters of lowercase base32", id)
		}
		if seen[id] {
			t.Fatalf("id %q twice", id)
		}
		seen[id] = true
	}
	if s := store.NewSecret(); len(s) != 52 {
		t.Errorf("secret %q: %d characters, want 52", s, len(s))
	}
}

func TestHashSecret(t *testing.T) {
	// sha256("abc")
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := store.HashSecret("abc").String(); got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
	if !(store.Hash{}).IsZero() || store.HashSecret("").IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := store.Options{}.WithDefaults()
	if o.StaleAfter != store.DefaultStaleAfter || o.Logger == nil {
		t.Errorf("defaults %+v", o)
	}
	if o := (store.Options{StaleAfter: time.Minute}).WithDefaults(); o.StaleAfter != time.Minute {
		t.Errorf("StaleAfter %v given, got %v", time.Minute, o.StaleAfter)
	}
}
