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

func testAdminTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	secret := store.NewSecret()
	tok := store.AdminToken{Hash: store.HashSecret(secret), Name: "admin", CreatedAt: t0}
	mustNoError(t, s.CreateAdminToken(ctx, tok), "create admin token")
	mustNoError(t, s.CheckAdminToken(ctx, store.HashSecret(secret)), "check the token")
	mustErrorIs(t, s.CheckAdminToken(ctx, store.HashSecret(secret+"x")), store.ErrNotFound, "check a wrong token")
	mustErrorIs(t, s.CheckAdminToken(ctx, store.Hash{}), store.ErrNotFound, "check the zero hash")
	mustErrorIs(t, s.CreateAdminToken(ctx, tok), store.ErrExists, "create the token again")
	mustErrorIs(t, s.CreateAdminToken(ctx, store.AdminToken{Name: "nohash"}), store.ErrInvalid, "create a token without hash")

	// Rotation: a second token, then the first deleted.
	mustErrorIs(t, s.DeleteAdminToken(ctx, tok.Hash), store.ErrLastToken, "delete the only token")
	mustNoError(t, s.CheckAdminToken(ctx, tok.Hash), "check the only token after its refused delete")
	next := store.AdminToken{Hash: store.HashSecret(store.NewSecret()), Name: "rotated", CreatedAt: t0.Add(time.Hour)}
	mustNoError(t, s.CreateAdminToken(ctx, next), "create a second token")
	got, err := s.ListAdminTokens(ctx)
	mustNoError(t, err, "list admin tokens")
	if diff := cmp.Diff([]store.AdminToken{tok, next}, got, cmpOpts...); diff != "" {
		t.Errorf("admin tokens, oldest first (-want +got):\n%s", diff)
	}
	mustErrorIs(t, s.DeleteAdminToken(ctx, store.HashSecret(secret+"x")), store.ErrNotFound, "delete an unknown token")
	mustNoError(t, s.DeleteAdminToken(ctx, tok.Hash), "delete the first token")
	mustErrorIs(t, s.CheckAdminToken(ctx, tok.Hash), store.ErrNotFound, "check the deleted token")
	mustNoError(t, s.CheckAdminToken(ctx, next.Hash), "check the remaining token")
	mustErrorIs(t, s.DeleteAdminToken(ctx, tok.Hash), store.ErrNotFound, "delete the deleted token")
	mustErrorIs(t, s.DeleteAdminToken(ctx, next.Hash), store.ErrLastToken, "delete the remaining token")
	got, err = s.ListAdminTokens(ctx)
	mustNoError(t, err, "list admin tokens")
	if diff := cmp.Diff([]store.AdminToken{next}, got, cmpOpts...); diff != "" {
		t.Errorf("admin tokens after the delete (-want +got):\n%s", diff)
	}
	mustDeleteTokensRace(t, []store.Store{s, s})
}

// mustDeleteTokensRace adds a token for each store and has every store
// delete one of them at once, twenty times over: all but one delete
// succeed, the others fail with ErrLastToken, and one token is left.
func mustDeleteTokensRace(t *testing.T, stores []store.Store) {
	t.Helper()
	ctx := context.Background()
	for round := range 20 {
		before, err := stores[0].ListAdminTokens(ctx)
		mustNoError(t, err, "list admin tokens")
		for _, old := range before[1:] {
			mustNoError(t, stores[0].DeleteAdminToken(ctx, old.Hash), "delete a token left from before")
		}
		// The survivor of before, and one new token per store: each store
		// deletes its own new one, plus the first deletes the survivor.
		doomed := []store.Hash{before[0].Hash}
		for range stores {
			tok := store.AdminToken{Hash: store.HashSecret(store.NewSecret()), Name: "race", CreatedAt: t0}
			mustNoError(t, stores[0].CreateAdminToken(ctx, tok), "create a token to race on")
			doomed = append(doomed, tok.Hash)
		}
		errs := make([]error, len(doomed))
		var wg sync.WaitGroup
		for i, h := range doomed {
			wg.Go(func() { errs[i] = stores[i%len(stores)].DeleteAdminToken(ctx, h) })
		}
		wg.Wait()
		refused := 0
		for i, err := range errs {
			switch {
			case errors.Is(err, store.ErrLastToken):
				refused++
			case err != nil:
				t.Fatalf("round %d: delete %d: %v", round, i, err)
			}
		}
		left, err := stores[0].ListAdminTokens(ctx)
		mustNoError(t, err, "list admin tokens")
		if refused != 1 || len(left) != 1 {
			t.Fatalf("round %d: %d deletes of %d tokens at once refused as the last, %d tokens left; want 1 and 1", round, refused, len(doomed), len(left))
		}
	}
}
