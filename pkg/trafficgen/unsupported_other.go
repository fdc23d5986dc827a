//go:build !linux

package trafficgen

import (
	"context"
	"errors"

	"github.com/ringtap/ringtap/pkg/testbed"
)

var errNotLinux = errors.New("sending frames needs Linux")

// SendRaw needs Linux.
func SendRaw(h testbed.Host, frames [][]byte) error { return errNotLinux }

// CountRx needs Linux.
func CountRx(h testbed.Host) (uint64, error) { return 0, errNotLinux }

// XDPCounter is a counting XDP program attached to a link (Linux only).
type XDPCounter struct{}

// AttachPass needs Linux.
func AttachPass(h testbed.Host) (*XDPCounter, error) { return nil, errNotLinux }

// AttachDrop needs Linux.
func AttachDrop(h testbed.Host) (*XDPCounter, error) { return nil, errNotLinux }

// Packets needs Linux.
func (c *XDPCounter) Packets() (uint64, error) { return 0, errNotLinux }

// Close does nothing outside Linux.
func (c *XDPCounter) Close() error { return nil }

// LiveSender sends frames with XDP live frames (Linux only).
type LiveSender struct{ CPU int }

// NewLiveSender needs Linux.
func NewLiveSender(h testbed.Host, frame []byte) (*LiveSender, error) { return nil, errNotLinux }

// Run needs Linux.
func (s *LiveSender) Run(ctx context.Context, n, rate uint64) (Result, error) {
	return Result{}, errNotLinux
}

// Close does nothing outside Linux.
func (s *LiveSender) Close() error { return nil }

// SetFlows needs Linux.
func (s *LiveSender) SetFlows(flows int) error { return errNotLinux }
