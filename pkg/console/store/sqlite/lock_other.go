//go:build !unix

package sqlite

import (
	"fmt"
	"os"
)

// lockFile creates path; on this system it does not lock it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock sqlite database: %w", err)
	}
	return f, nil
}
