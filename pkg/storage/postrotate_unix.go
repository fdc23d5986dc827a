//go:build unix

package storage

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in a process group of its own and makes a timeout
// kill the whole group, so that a shell script's children die too.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
