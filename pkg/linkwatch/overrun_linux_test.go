package linkwatch

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// effectiveRcvbuf is what the kernel makes of SO_RCVBUF=size on a netlink
// socket (it doubles the value and raises it to its minimum).
func effectiveRcvbuf(t *testing.T, size int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink socket: %v", err)
	}
	defer unix.Close(fd)
	must(t, "set SO_RCVBUF", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size))
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	must(t, "get SO_RCVBUF", err)
	return got
}

// TestOverrun makes the kernel drop link events (a receive buffer at the
// kernel's minimum, a burst of link creations and deletions) and checks
// that the view is right once the burst is over, without waiting for the
// periodic resync.
func TestOverrun(t *testing.T) {
	const (
		rcvbuf = 1
		burst  = 200
	)
	e := mustEnv(t)
	s := mustStart(t, e, Options{ReceiveBufferSize: rcvbuf, Resync: time.Hour})
	t.Logf("SO_RCVBUF %d gives %d bytes", rcvbuf, effectiveRcvbuf(t, rcvbuf))

	start := time.Now()
	for i := range burst {
		if err := addLink(e.nl, fmt.Sprintf("lwb%d", i), i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < burst; i += 2 { // delete half, so the end state has some
		must(t, "delete link", e.nl.LinkDel(mustLink(t, e, fmt.Sprintf("lwb%d", i))))
	}
	burstTook := time.Since(start)
	want, settled := mustMatchKernel(t, e, s.Watcher)
	st := s.Stats()
	t.Logf("burst of %d links made and %d deleted in %v; view matched the kernel's (%d links) %v later; stats %+v",
		burst, burst/2, burstTook, len(want), settled, st)
	if st.Overruns == 0 {
		t.Errorf("no overrun reported: the test did not exercise the ENOBUFS path (stats %+v)", st)
	}
	if st.Resyncs < 2 {
		t.Errorf("resyncs = %d, want more than the first dump", st.Resyncs)
	}
}
