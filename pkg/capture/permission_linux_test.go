package capture

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/caps"
)

// TestExplainPermission: every EPERM/EACCES becomes ErrPermission with one
// sentence naming what is missing, and keeps the kernel's errno.
func TestExplainPermission(t *testing.T) {
	three := caps.Of(caps.BPF, caps.NetAdmin, caps.Perfmon)
	load := fmt.Errorf("load programs: %w", unix.EACCES)
	attach := fmt.Errorf("attach xdp: %w", unix.EPERM)
	tests := []struct {
		name      string
		err       error
		eff       caps.Set
		initialNS bool
		memlock   error
		want      string
	}{
		{name: "no perfmon", err: load, eff: caps.Of(caps.BPF, caps.NetAdmin), initialNS: true,
			want: "insufficient privilege: capturing needs CAP_PERFMON (for the verifier to accept the capture programs); grant it (systemd AmbientCapabilities=, docker run --cap-add PERFMON, setcap) or run as root (load programs: permission denied)"},
		{name: "no bpf", err: load, eff: caps.Of(caps.NetAdmin, caps.Perfmon), initialNS: true,
			want: "insufficient privilege: capturing needs CAP_BPF (to create BPF maps and load programs); grant it (systemd AmbientCapabilities=, docker run --cap-add BPF, setcap) or run as root (load programs: permission denied)"},
		{name: "no net admin", err: attach, eff: caps.Of(caps.BPF, caps.Perfmon), initialNS: true,
			want: "insufficient privilege: capturing needs CAP_NET_ADMIN (to attach programs at XDP and TC); grant it (systemd AmbientCapabilities=, docker run --cap-add NET_ADMIN, setcap) or run as root (attach xdp: operation not permitted)"},
		{name: "sys admin without net admin", err: attach, eff: caps.Of(caps.SysAdmin), initialNS: true,
			want: "insufficient privilege: attaching on this kernel needs CAP_NET_ADMIN (to attach programs at XDP and TC); grant it (systemd AmbientCapabilities=, docker run --cap-add NET_ADMIN, setcap) or run as root (attach xdp: operation not permitted)"},
		{name: "user namespace", err: load, eff: three,
			want: "insufficient privilege: the kernel refused BPF (load programs: permission denied) because ringtap runs in a user namespace other than the initial one (a rootless or user-namespaced container), where no capability counts for bpf(2); run it in the initial user namespace with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"},
		{name: "memlock", err: attach, eff: three, initialNS: true, memlock: unix.EPERM,
			want: "insufficient privilege: attach xdp: operation not permitted (this kernel charges BPF maps to RLIMIT_MEMLOCK and it could not be raised: operation not permitted; run with LimitMEMLOCK=infinity or CAP_SYS_RESOURCE)"},
		{name: "everything there", err: attach, eff: three, initialNS: true,
			want: "insufficient privilege: the kernel refused BPF (attach xdp: operation not permitted) although ringtap has CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; an LSM (SELinux, AppArmor), kernel lockdown or a seccomp filter may forbid it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainPermission(tt.err, tt.eff, tt.initialNS, tt.memlock)
			if diff := cmp.Diff(tt.want, got.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if !errors.Is(got, ErrPermission) || !errors.Is(got, errors.Unwrap(tt.err)) {
				t.Errorf("%v: want ErrPermission wrapping %v", got, errors.Unwrap(tt.err))
			}
		})
	}
}

// TestPermissionPassesOthersThrough: only EPERM and EACCES are privilege
// problems, and a verifier rejection never is one.
func TestPermissionPassesOthersThrough(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("create map: %w", unix.ENOMEM),
		fmt.Errorf("%w: log", ErrVerifier),
		fmt.Errorf("%w: already said", ErrPermission),
	} {
		if got := permission(err); got != err {
			t.Errorf("permission(%v) = %v, want it unchanged", err, got)
		}
	}
}
