package storetest

import (
	"testing"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// testSharedWake: a change through one console wakes a long-poll on the
// other within a second.
func testSharedWake(t *testing.T, a, b store.Store) {
	mustWakeAcross(t, a, b)
	mustWakeAcross(t, b, a)
}

func testSharedRevoke(t *testing.T, a, b store.Store) {
	mustRevokeWakes(t, a, b)
}

// testSharedConsumeRace: racers on both consoles, one key.
func testSharedConsumeRace(t *testing.T, a, b store.Store) {
	t.Run("different public keys", func(t *testing.T) { mustRace(t, []store.Store{a, b}, false) })
	t.Run("one public key", func(t *testing.T) { mustRace(t, []store.Store{a, b}, true) })
}

// testSharedTokensRace: deletes of the last tokens through both consoles
// at once leave one.
func testSharedTokensRace(t *testing.T, a, b store.Store) {
	mustNoError(t, a.CreateAdminToken(t.Context(), store.AdminToken{Hash: store.HashSecret(store.NewSecret()), Name: "first", CreatedAt: t0}), "create a token")
	mustDeleteTokensRace(t, []store.Store{a, b})
}

func testSharedStaleGeneration(t *testing.T, a, b store.Store) {
	mustCapturesRace(t, []store.Store{a, b})
}
