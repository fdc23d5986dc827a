package certmgr

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTransportAfterEnrollment: an agent whose certificate expired keeps
// a connection alive that presents no certificate, and a plain transport
// goes on reusing it after `ringtap agent enroll`, refused forever. The
// Manager's Transport starts over with the new enrollment: a request in
// flight across it is answered for the new certificate, and so is every
// request after.
func TestTransportAfterEnrollment(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	mustExpire(t, fc, dir)
	m := mustManager(t, dir, Options{ReloadInterval: 20 * time.Millisecond})
	runManager(t, m)

	ours := &http.Client{Transport: m.Transport(&http.Transport{MaxIdleConnsPerHost: 2}), Timeout: 10 * time.Second}
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: m.TLSConfig(), MaxIdleConnsPerHost: 2}, Timeout: 10 * time.Second}
	defer ours.CloseIdleConnections()
	defer plain.CloseIdleConnections()
	for name, c := range map[string]*http.Client{"Transport": ours, "plain": plain} {
		if got, code := whoami(t, fc.url, c); code != http.StatusUnauthorized {
			t.Fatalf("%s with the expired certificate: %d %s, want 401", name, code, got)
		}
	}

	type answer struct {
		code int
		body string
		err  error
	}
	inFlight := make(chan answer, 1)
	go func() {
		resp, err := ours.Get(fc.url + "/whoami?wait=800ms")
		if err != nil {
			inFlight <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inFlight <- answer{code: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(200 * time.Millisecond) // sent on the connection without a certificate
	enrolled := m.Enrolled()
	e := mustEnroll(t, fc, dir)
	mustClosed(t, enrolled)
	if s := m.Status(); !s.Ready || s.DeviceID != e.DeviceID {
		t.Fatalf("status after the new enrollment: %+v", s)
	}

	a := <-inFlight
	if a.err != nil || a.code != http.StatusOK || !strings.HasPrefix(a.body, e.DeviceID+" ") {
		t.Errorf("the request in flight across the enrollment: %d %q %v, want 200 from %s", a.code, a.body, a.err, e.DeviceID)
	}
	if got, code := whoami(t, fc.url, ours); code != http.StatusOK || !strings.HasPrefix(got, e.DeviceID+" ") {
		t.Errorf("Transport after the enrollment: %d %s, want 200 from %s", code, got, e.DeviceID)
	}
	// The reason for Transport: the connection kept from before still
	// presents no certificate.
	if got, code := whoami(t, fc.url, plain); code != http.StatusUnauthorized {
		t.Errorf("a plain transport's kept-alive connection: %d %s, want 401", code, got)
	}
}

// TestEnrolledWithAnotherConsole: the agent's clients keep the console
// URL they started with, so an enrollment with a console at another URL
// makes the Manager unready, saying to restart the agent; enrolling back
// with the first console makes it ready again.
func TestEnrolledWithAnotherConsole(t *testing.T) {
	first, other := newFakeConsole(t, time.Hour), newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, first, dir)
	m := mustManager(t, dir, Options{ReloadInterval: 20 * time.Millisecond})
	runManager(t, m)
	waitStatus := func(what string, ok func(Status) bool) Status {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := m.Status()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: %+v", what, s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	enrolled := m.Enrolled()
	mustEnroll(t, other, dir)
	mustClosed(t, enrolled)
	s := waitStatus("the other console's enrollment", func(s Status) bool { return s.ConsoleURL == other.url })
	if s.Ready || !strings.Contains(s.Reason, "still asks "+first.url+": restart it") {
		t.Errorf("status after enrolling with another console: %+v, want unready, saying to restart", s)
	}
	enrolled = m.Enrolled()
	mustEnroll(t, first, dir)
	mustClosed(t, enrolled)
	waitStatus("ready with the first console again", func(s Status) bool { return s.ConsoleURL == first.url && s.Ready })
}

// mustClosed waits up to 5 s for Enrolled's channel to be closed.
func mustClosed(t *testing.T, enrolled <-chan struct{}) {
	t.Helper()
	select {
	case <-enrolled:
	case <-time.After(5 * time.Second):
		t.Fatal("Enrolled was not closed 5 s after the new enrollment was written")
	}
}
