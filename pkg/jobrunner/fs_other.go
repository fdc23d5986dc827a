//go:build !unix

package jobrunner

import "errors"

func diskSpace(string) (avail, total int64, err error) {
	return 0, 0, errors.New("free space is only known on unix systems")
}
