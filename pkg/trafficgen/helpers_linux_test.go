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

// waitArrived waits until B's XDP counter has seen the sent frames, less
// those that p.A's veth dropped since droppedBefore (its tx_dropped), and
// returns what B saw. Unpaced on a loaded machine or under TCG, B's NAPI
// falls behind and its ring fills: the veth drops what it cannot queue
// and counts it, so a frame is lost only if neither side counted it.
// With retries, restarted calls may add frames, so B may see more.
func waitArrived(t *testing.T, p *testbed.Pair, xdp *XDPCounter, res Result, droppedBefore uint64) uint64 {
	t.Helper()
	got := waitFor(t, res.Sent, 2*time.Second, xdp.Packets)
	dropped, err := CountTxDropped(p.A)
	if err != nil {
		t.Fatal(err)
	}
	dropped -= droppedBefore
	switch {
	case got+dropped < res.Sent:
		t.Errorf("B saw %d frames and A's veth dropped %d, sender sent %d: %d lost uncounted", got, dropped, res.Sent, res.Sent-got-dropped)
	case got+dropped > res.Sent && res.Retries == 0:
		t.Errorf("B saw %d frames and A's veth dropped %d, sender sent %d with no retries", got, dropped, res.Sent)
	case dropped > 0:
		t.Logf("B saw %d frames, A's veth dropped %d (B's ring was full), sender sent %d", got, dropped, res.Sent)
	}
	return got
}
