//go:build unix

package storage

import (
	"errors"
	"os"
	"syscall"
)

// writable checks write and search permission on a directory, and a
// read-only mount.
func writable(dir string) error {
	return syscall.Access(dir, 2|1) // W_OK|X_OK
}

// errLocked: another process (or Recorder) holds the file.
var errLocked = errors.New("in use by a running capture")

// lockFile takes an exclusive advisory lock on f, without waiting: a
// file being written is locked by its Recorder, and the kernel drops the
// lock when the process dies, so recovery never touches a live file.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}

// diskSpace returns the bytes available to unprivileged users and the
// file system's size.
func diskSpace(dir string) (avail, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// allocated is the disk space a file takes (its blocks), its size if
// unknown.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
