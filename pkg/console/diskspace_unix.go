//go:build unix

package console

import "syscall"

// diskSpace returns the bytes available to unprivileged users on the file
// system of dir, and its size.
func diskSpace(dir string) (avail, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
