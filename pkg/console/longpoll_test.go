package console

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
)

// pollResult is the answer to a long poll and when it came.
type pollResult struct {
	code int
	body []byte
	err  error
	at   time.Time
}

// goPoll long-polls the config on url with a's certificate.
func goPoll(a *agentClient, url, query string) <-chan pollResult {
	ch := make(chan pollResult, 1)
	go func() {
		code, body, err := agentDo(a.client, url, "GET", ConfigPath+"?"+query, nil)
		ch <- pollResult{code, body, err, time.Now()}
	}()
	return ch
}

// mustWoken waits for a poll that a change at changed must end within a
// second, with generation gen.
func mustWoken(t *testing.T, ch <-chan pollResult, changed time.Time, gen int64) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil || r.code != http.StatusOK {
			t.Fatalf("poll: %d %s %v, want 200", r.code, r.body, r.err)
		}
		var cfg ConfigResponse
		if err := json.Unmarshal(r.body, &cfg); err != nil || cfg.Generation != gen {
			t.Fatalf("poll answered %s, want generation %d", r.body, gen)
		}
		if d := r.at.Sub(changed); d > time.Second {
			t.Errorf("poll answered %v after the change, want within 1s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the change did not end the poll")
	}
}

func putCaptures(c *testConsole, id string, gen int64, names ...string) time.Time {
	c.t.Helper()
	var caps []store.Capture
	for _, n := range names {
		caps = append(caps, webCapture(n))
	}
	c.mustDo(http.StatusOK, "PUT", "/api/v1/devices/"+id+"/captures", map[string]any{"captures": caps}, nil, "If-Match", itoa(gen))
	return time.Now()
}

func TestLongPoll(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		a := c.mustEnroll("h", "m")
		id := a.m.DeviceID()
		url := c.srv.AgentURL()

		// Nothing new: 304 once the wait is over.
		start := time.Now()
		r := <-goPoll(a, url, "after=0&wait=1s")
		if r.err != nil || r.code != http.StatusNotModified {
			t.Fatalf("poll with nothing new: %d %s %v, want 304", r.code, r.body, r.err)
		}
		if d := time.Since(start); d < time.Second || d > 3*time.Second {
			t.Errorf("304 after %v, want after the 1s wait", d)
		}
		if r := <-goPoll(a, url, "after=0&wait=0s"); r.code != http.StatusNotModified {
			t.Errorf("poll without a wait: %d, want 304", r.code)
		}

		// A change through the admin API ends a waiting poll.
		ch := goPoll(a, url, "after=0&wait=20s")
		time.Sleep(200 * time.Millisecond)
		mustWoken(t, ch, putCaptures(c, id, 0, "web"), 1)

		// Newer already: at once, whatever the wait.
		start = time.Now()
		if r := <-goPoll(a, url, "after=0&wait=20s"); r.code != http.StatusOK || time.Since(start) > time.Second {
			t.Errorf("poll behind the current generation: %d after %v, want 200 at once", r.code, time.Since(start))
		}

		// Revocation ends a waiting poll with 403.
		ch = goPoll(a, url, "after=1&wait=20s")
		time.Sleep(200 * time.Millisecond)
		c.mustDo(http.StatusOK, "POST", "/api/v1/devices/"+id+"/revoke", nil, nil)
		select {
		case r := <-ch:
			if r.code != http.StatusForbidden {
				t.Errorf("poll of a device revoked meanwhile: %d %s, want 403", r.code, r.body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("revocation did not end the poll")
		}
	})
}

// TestLongPollShutdown: stopping the console ends the long polls at once.
func TestLongPollShutdown(t *testing.T) {
	c := mustConsole(t, backends[0].open(t), nil)
	a := c.mustEnroll("h", "m")
	ch := goPoll(a, c.srv.AgentURL(), "after=0&wait=60s")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	c.stop()
	select {
	case r := <-ch:
		if r.err == nil && r.code != http.StatusServiceUnavailable {
			t.Errorf("poll during shutdown: %d %s, want 503", r.code, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not end the poll")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v with a long poll open", d)
	}
}

// TestTwoConsoles: two consoles on one PostgreSQL database; a change made
// through console 1 wakes an agent long-polling console 2 within a second.
func TestTwoConsoles(t *testing.T) {
	url := pgtest.Start(t)
	ca := mustCA(t)
	c1 := mustConsole(t, mustOpenPostgres(t, url), ca)
	c2 := mustConsole(t, mustOpenPostgres(t, url), ca)
	a := c1.mustEnroll("h", "m")
	id := a.m.DeviceID()

	// Console 2 knows the device console 1 enrolled.
	var dv deviceView
	c2.mustDo(http.StatusOK, "GET", "/api/v1/devices/"+id, nil, &dv)

	for gen := int64(0); gen < 3; gen++ {
		ch := goPoll(a, c2.srv.AgentURL(), "after="+itoa(gen)+"&wait=20s")
		time.Sleep(300 * time.Millisecond) // the poll waits on console 2
		mustWoken(t, ch, putCaptures(c1, id, gen, "web"), gen+1)
	}
	// And the other way round, the heartbeat through console 2 shows on
	// console 1.
	if code, body, err := agentDo(a.client, c2.srv.AgentURL(), "POST", HeartbeatPath, mustJSON(t, Heartbeat{AppliedGeneration: 3, Hostname: "h"})); err != nil || code != http.StatusNoContent {
		t.Fatalf("heartbeat: %d %s %v", code, body, err)
	}
	c1.mustDo(http.StatusOK, "GET", "/api/v1/devices/"+id, nil, &dv)
	if dv.AppliedGeneration != 3 || dv.State != store.StateOnline {
		t.Errorf("device on console 1 = %+v", dv)
	}
}
