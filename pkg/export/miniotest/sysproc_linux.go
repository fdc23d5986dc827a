//go:build linux

package miniotest

import "syscall"

// sysProcAttr puts minio in its own process group (so Kill reaches every
// process it starts) and has the kernel kill it if the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
