//go:build !linux

package caps

import "errors"

// MissingForCapture is only meaningful on Linux.
func MissingForCapture() ([]string, error) {
	return nil, errors.New("capabilities are a Linux feature")
}
