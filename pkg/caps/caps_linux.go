package caps

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Capability numbers from linux/capability.h.
const (
	NetAdmin = 12
	SysAdmin = 21
	Perfmon  = 38
	BPF      = 39
)

var names = map[int]string{NetAdmin: "CAP_NET_ADMIN", SysAdmin: "CAP_SYS_ADMIN", Perfmon: "CAP_PERFMON", BPF: "CAP_BPF"}

// Name returns the CAP_ name of a capability number.
func Name(c int) string {
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("cap(%d)", c)
}

func effective() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// MissingForCapture lists the capabilities the process lacks to load and
// attach capture programs: CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN covers
// both on kernels that predate CAP_BPF).
func MissingForCapture() ([]string, error) {
	eff, err := effective()
	if err != nil {
		return nil, err
	}
	has := func(c int) bool { return eff&(1<<uint(c)) != 0 }
	if has(SysAdmin) {
		return nil, nil
	}
	var missing []string
	for _, c := range []int{BPF, NetAdmin} {
		if !has(c) {
			missing = append(missing, Name(c))
		}
	}
	return missing, nil
}
