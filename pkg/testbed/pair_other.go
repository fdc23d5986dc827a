//go:build !linux

package testbed

import "errors"

var errNotLinux = errors.New("testbed needs Linux network namespaces")

// NewPair needs Linux.
func NewPair(cfg PairConfig) (*Pair, error) { return nil, errNotLinux }

// Close does nothing outside Linux.
func (p *Pair) Close() error { return nil }

// Do needs Linux.
func (h Host) Do(fn func() error) error { return errNotLinux }
