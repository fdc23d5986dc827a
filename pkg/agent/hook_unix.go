//go:build unix

package agent

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in a process group of its own and makes its
// cancellation kill the whole group, so that a hook's children (a shell's
// sleep, say) go with it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
