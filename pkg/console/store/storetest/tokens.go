package storetest

import (
	"context"
	"testing"

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
}
