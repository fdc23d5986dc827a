package testbedtest

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ringtap/ringtap/pkg/caps"
	"github.com/ringtap/ringtap/pkg/testbed"
)

// RequirePrivileged skips the test (fails it under CI=true) unless the
// process is root, has CAP_BPF and CAP_NET_ADMIN, and can create a BPF map.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root (euid %d) to create network namespaces", os.Geteuid())
	}
	missing, err := caps.MissingForCapture()
	if err != nil {
		SkipOrFail(t, "cannot read capabilities: %v", err)
	}
	if len(missing) > 0 {
		SkipOrFail(t, "needs capabilities %v", missing)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		SkipOrFail(t, "BPF unusable: create map: %v", err)
	}
	m.Close()
}

// MustNewPair builds a testbed.Pair after RequirePrivileged and closes it
// at test cleanup.
func MustNewPair(t testing.TB, cfg testbed.PairConfig) *testbed.Pair {
	t.Helper()
	RequirePrivileged(t)
	p, err := testbed.NewPair(cfg)
	if err != nil {
		t.Fatalf("build test hosts: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("remove test hosts: %v", err)
		}
	})
	return p
}
