// Package caps reports which Linux capabilities the process lacks for a
// task, so that a permission error can say what to grant instead of EPERM.
//
// What a capture needs was measured on Linux 6.18 by running ringtap as a
// non-root user with setpriv (cmd/ringtap/privilege_test.go repeats it):
//
//   - CAP_BPF creates the maps and loads the programs;
//   - CAP_PERFMON lets the verifier accept them (without it the kernel
//     refuses the capture programs, "attempt to corrupt spilled pointer on
//     stack", with EACCES);
//   - CAP_NET_ADMIN attaches them at XDP and TC;
//   - CAP_SYS_ADMIN is needed only to enter another network namespace
//     (setns, for --netns); a process started inside the namespace does
//     without it. CAP_SYS_ADMIN alone also stands in for the other three,
//     which is why it is never asked for otherwise.
//
// RLIMIT_MEMLOCK (CAP_SYS_RESOURCE to raise it) matters only before Linux
// 5.11, which charged BPF maps to it; later kernels charge the memory cgroup.
//
// The functions promise only what the process's effective set says; the
// kernel may still refuse (another user namespace, an LSM), and callers then
// say so.
package caps
