//go:build !unix

package agent

import "os/exec"

// killGroup leaves cmd as it is: without process groups, cancellation
// kills the hook process only.
func killGroup(*exec.Cmd) {}
