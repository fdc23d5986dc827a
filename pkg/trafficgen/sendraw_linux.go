package trafficgen

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// sendRetryFor bounds how long SendRaw retries one frame that the kernel
// refuses for lack of buffer space.
const sendRetryFor = time.Second

// SendRaw sends each frame unchanged out of h's veth end, in order, with an
// AF_PACKET raw socket opened inside h's namespace. Frames pass the
// sender's qdisc and TC egress and arrive at the peer's XDP and TC ingress.
// A frame may be up to the link's MTU + 14 bytes (+ 4 when it starts with
// an 802.1Q tag). SendRaw returns once the kernel has taken every frame;
// the peer may still be processing them, so poll for arrival. Sending
// thousands of frames back to back can overflow the peer's backlog
// (net.core.netdev_max_backlog), which drops silently.
func SendRaw(h testbed.Host, frames [][]byte) error {
	return h.Do(func() error {
		// Protocol 0: the socket receives nothing.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: h.Index}); err != nil {
			return fmt.Errorf("bind packet socket to %s: %w", h.Link, err)
		}
		for i, f := range frames {
			if err := sendOne(fd, f); err != nil {
				return fmt.Errorf("send frame %d (%d bytes) on %s: %w", i, len(f), h.Link, err)
			}
		}
		return nil
	})
}

func sendOne(fd int, f []byte) error {
	deadline := time.Now().Add(sendRetryFor)
	for {
		n, err := unix.Write(fd, f)
		if (errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN)) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			return err
		}
		if n != len(f) {
			return fmt.Errorf("short write: %d of %d bytes", n, len(f))
		}
		return nil
	}
}
