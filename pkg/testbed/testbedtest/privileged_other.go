//go:build !linux

package testbedtest

import (
	"runtime"
	"testing"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// RequirePrivileged skips (fails under CI=true): test hosts need Linux.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	SkipOrFail(t, "test hosts need Linux, not %s", runtime.GOOS)
}

// MustNewPair skips (fails under CI=true): test hosts need Linux.
func MustNewPair(t testing.TB, cfg testbed.PairConfig) *testbed.Pair {
	t.Helper()
	RequirePrivileged(t)
	return nil
}

// MustAttached skips (fails under CI=true): test hosts need Linux.
func MustAttached(t testing.TB, h testbed.Host) []string {
	t.Helper()
	RequirePrivileged(t)
	return nil
}
