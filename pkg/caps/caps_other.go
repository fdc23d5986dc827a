//go:build !linux

package caps

import "errors"

var errNotLinux = errors.New("capabilities are a Linux feature")

// Effective is only meaningful on Linux.
func Effective() (Set, error) { return 0, errNotLinux }

// MissingForCapture is only meaningful on Linux.
func MissingForCapture() ([]string, error) { return nil, errNotLinux }

// MissingForNetNS is only meaningful on Linux.
func MissingForNetNS() ([]string, error) { return nil, errNotLinux }

// InitialUserNS is only meaningful on Linux.
func InitialUserNS() bool { return true }
