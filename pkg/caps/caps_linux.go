package caps

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Effective returns the process's effective capability set.
func Effective() (Set, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return Set(uint64(data[0].Effective) | uint64(data[1].Effective)<<32), nil
}

// MissingForCapture lists the capabilities the process lacks to load and
// attach capture programs: CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON
// (CAP_SYS_ADMIN stands in for all three).
func MissingForCapture() ([]string, error) {
	eff, err := Effective()
	if err != nil {
		return nil, err
	}
	return Names(eff.MissingForCapture()), nil
}

// MissingForNetNS lists the capabilities the process lacks to enter
// another network namespace: CAP_SYS_ADMIN.
func MissingForNetNS() ([]string, error) {
	eff, err := Effective()
	if err != nil {
		return nil, err
	}
	return Names(eff.MissingForNetNS()), nil
}

// InitialUserNS says whether the process runs in the initial user
// namespace, the only one where CAP_BPF and CAP_PERFMON let it use BPF. A
// rootless or user-namespaced container has its capabilities, but the
// kernel ignores them for bpf(2).
func InitialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true // no /proc: assume the common case
	}
	return initialUIDMap(b)
}

// initialUIDMap says whether a uid_map is the initial namespace's identity
// map of all 2^32-1 ids.
func initialUIDMap(b []byte) bool {
	f := bytes.Fields(b)
	return len(f) == 3 && string(f[0]) == "0" && string(f[1]) == "0" && string(f[2]) == "4294967295"
}
