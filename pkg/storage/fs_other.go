//go:build !unix

package storage

import (
	"errors"
	"os"
)

func writable(dir string) error { return nil }

var errLocked = errors.New("in use by a running capture")

func lockFile(f *os.File) error { return nil }

func diskSpace(dir string) (avail, total int64, err error) {
	return 0, 0, errors.New("free space is only known on unix systems")
}

func allocated(fi os.FileInfo) int64 { return fi.Size() }
