package trafficgen

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/testbed"
)

// packetReceiver is an AF_PACKET socket in a host's namespace that reads
// the frames arriving on its link (outgoing ones ignored).
type packetReceiver struct{ fd int }

func newPacketReceiver(t *testing.T, h testbed.Host) *packetReceiver {
	t.Helper()
	var fd int
	err := h.Do(func() (err error) {
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: h.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			unix.Close(fd)
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		tv := unix.NsecToTimeval((2 * time.Second).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("packet receiver on %s: %v", h.Link, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &packetReceiver{fd: fd}
}

// read returns the next frame, or nil after the 2 s timeout.
func (r *packetReceiver) read(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 70000)
	n, _, err := unix.Recvfrom(r.fd, buf, 0)
	if errors.Is(err, unix.EAGAIN) {
		return nil
	}
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return buf[:n]
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// listenUDP opens a UDP socket on h's address of addr's family.
func listenUDP(t *testing.T, h testbed.Host, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := h.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readDatagrams reads datagrams until want have arrived or none comes for
// wait; it returns the payloads.
func readDatagrams(t *testing.T, c *net.UDPConn, want int, wait time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 70000)
	for len(got) < want {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
	return got
}

// waitFor polls f until it returns want or the timeout passes; it returns
// the last value.
func waitFor(t *testing.T, want uint64, timeout time.Duration, f func() (uint64, error)) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}
