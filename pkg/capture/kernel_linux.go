package capture

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/caps"
)

// Kernel describes what the running kernel offers the capture programs.
// Each feature is probed (cilium/ebpf's features package), not read off
// the version, so a vendor kernel with backports gets what it has.
type Kernel struct {
	// Release is uname -r.
	Release string
	// RingBuf: BPF ring buffers and their helpers (5.8). Without them
	// nothing can be captured.
	RingBuf bool
	// XDP: bpf_xdp_load_bytes and multi-buffer XDP (5.18). Without it the
	// XDP hook is unavailable; HookAuto then uses TC for ingress.
	XDP bool
}

var (
	kernelOnce sync.Once
	kernel     Kernel
	kernelErr  error
	memlockErr error
)

// ProbeKernel probes the running kernel once per process. It also lifts
// RLIMIT_MEMLOCK where the kernel still charges BPF maps to it (before
// 5.11), which needs CAP_SYS_RESOURCE or root.
func ProbeKernel() (Kernel, error) {
	kernelOnce.Do(func() {
		memlockErr = rlimit.RemoveMemlock()
		kernel.Release = kernelRelease()
		probe := func(what string, err error) bool {
			if err == nil {
				return true
			}
			if !errors.Is(err, ebpf.ErrNotSupported) && kernelErr == nil {
				kernelErr = fmt.Errorf("probe %s: %w", what, err)
			}
			return false
		}
		kernel.RingBuf = probe("ring buffers", features.HaveMapType(ebpf.RingBuf))
		kernel.XDP = probe("bpf_xdp_load_bytes", features.HaveProgramHelper(ebpf.XDP, asm.FnXdpLoadBytes))
	})
	return kernel, kernelErr
}

// ErrKernel: the running kernel lacks a feature ringtap needs; the message
// names the feature, the kernel version that brought it and uname -r.
var ErrKernel = errors.New("kernel too old")

// requireKernel checks cfg (defaults filled in) against k and resolves an
// automatic hook: on a kernel without XDP support, HookAuto captures
// ingress at TC. auto says whether the user left the hook to ringtap.
func requireKernel(k Kernel, cfg *Config, auto bool) error {
	if !k.RingBuf {
		return fmt.Errorf("%w: kernel %s lacks BPF ring buffers (5.8); ringtap needs ≥ 5.8", ErrKernel, k.Release)
	}
	if cfg.Hook == HookXDP && !k.XDP {
		if !auto {
			return fmt.Errorf("%w: kernel %s lacks bpf_xdp_load_bytes (5.18), which the XDP hook needs; use --hook tc (ringtap needs ≥ 5.18 for XDP, ≥ 5.8 for TC)", ErrKernel, k.Release)
		}
		if cfg.XDPMode != XDPAuto {
			return fmt.Errorf("%w: kernel %s lacks bpf_xdp_load_bytes (5.18), which --xdp-mode %s needs", ErrKernel, k.Release, cfg.XDPMode)
		}
		cfg.Hook = HookTC
	}
	return nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// ErrVerifier: the kernel's verifier rejected a capture program. This is
// not a privilege problem, although the kernel reports it as EACCES.
var ErrVerifier = errors.New("the kernel's verifier rejected the capture program")

// verifierError keeps the verifier's last lines instead of the whole log,
// and names the kernel.
func verifierError(err error) error {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		return permission(fmt.Errorf("load programs: %w", err))
	}
	lines := ve.Log
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	return fmt.Errorf("%w on kernel %s (%v; please report it). The verifier's last lines:\n  %s",
		ErrVerifier, kernelRelease(), ve.Cause, strings.Join(lines, "\n  "))
}

// permission turns EPERM/EACCES from creating maps or attaching into
// ErrPermission with one sentence saying what is missing. A verifier
// rejection is never one.
func permission(err error) error {
	if errors.Is(err, ErrVerifier) || errors.Is(err, ErrPermission) {
		return err
	}
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		return err
	}
	eff, cerr := caps.Effective()
	if cerr != nil {
		// Assume everything is there: the message then blames the rest.
		eff = caps.Of(caps.BPF, caps.NetAdmin, caps.Perfmon)
	}
	return explainPermission(err, eff, caps.InitialUserNS(), memlockErr)
}

// explainPermission is permission for a process with the effective set eff,
// in the initial user namespace or not, whose RLIMIT_MEMLOCK could not be
// lifted (memlock != nil).
func explainPermission(err error, eff caps.Set, initialNS bool, memlock error) error {
	if missing := eff.MissingForCapture(); len(missing) > 0 {
		return fmt.Errorf("%w: %s (%w)", ErrPermission, caps.Needs("capturing", missing), err)
	}
	switch {
	case !eff.Has(caps.NetAdmin):
		// CAP_SYS_ADMIN alone: kernels before bpf_net_capable() (6.x)
		// want CAP_NET_ADMIN itself for XDP and netlink attachments.
		return fmt.Errorf("%w: %s (%w)", ErrPermission, caps.Needs("attaching on this kernel", []int{caps.NetAdmin}), err)
	case !initialNS:
		return fmt.Errorf("%w: the kernel refused BPF (%w) because ringtap runs in a user namespace other than the initial one (a rootless or user-namespaced container), where no capability counts for bpf(2); run it in the initial user namespace with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON", ErrPermission, err)
	case memlock != nil:
		return fmt.Errorf("%w: %w (this kernel charges BPF maps to RLIMIT_MEMLOCK and it could not be raised: %v; run with LimitMEMLOCK=infinity or CAP_SYS_RESOURCE)", ErrPermission, err, memlock)
	}
	return fmt.Errorf("%w: the kernel refused BPF (%w) although ringtap has CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; an LSM (SELinux, AppArmor), kernel lockdown or a seccomp filter may forbid it", ErrPermission, err)
}
