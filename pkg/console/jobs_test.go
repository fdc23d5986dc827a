package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// mustJobConsole is mustConsole with a job policy and a data directory
// (a new one when ""), so that a test can restart a console over the
// same store and files.
func mustJobConsole(t *testing.T, st store.Store, ca *pki.CA, dataDir string, policy JobPolicy) *testConsole {
	t.Helper()
	if ca == nil {
		ca = mustCA(t)
	}
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	c := &testConsole{t: t, st: st, ca: ca, clock: &clock{}}
	token, _ := pki.NewAdminToken()
	if err := st.CreateAdminToken(context.Background(), store.AdminToken{Hash: store.HashSecret(token), Name: "test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c.token = token
	srv, err := New(Config{
		Store: st, CA: ca, DataDir: dataDir,
		AgentListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		JobPolicy: policy,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:       c.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(c.stop)
	c.admin = pinnedClient(t, ca, nil)
	return c
}

// mustCreateJob creates a job through the admin API.
func (c *testConsole) mustCreateJob(req map[string]any) JobView {
	c.t.Helper()
	var v JobView
	c.mustDo(http.StatusCreated, "POST", "/api/v1/jobs", req, &v)
	return v
}

// mustJob reads job id through the admin API.
func (c *testConsole) mustJob(id int64) JobView {
	c.t.Helper()
	var v JobView
	c.mustDo(http.StatusOK, "GET", jobPath(id, ""), nil, &v)
	return v
}

// mustJobs lists the jobs through the admin API.
func (c *testConsole) mustJobs(query string) []JobView {
	c.t.Helper()
	var l struct{ Jobs []JobView }
	c.mustDo(http.StatusOK, "GET", "/api/v1/jobs"+query, nil, &l)
	return l.Jobs
}

// waitFor polls cond every 50 ms for up to timeout and reports whether it
// became true.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for end := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

func TestJobCreateListGetCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustJobConsole(t, b.open(t), nil, "", JobPolicy{})
		a1, a2 := c.mustEnroll("sensor-1", "m-1"), c.mustEnroll("sensor-2", "m-2")
		d1, d2 := a1.m.DeviceID(), a2.m.DeviceID()

		start := time.Now()
		v := c.mustCreateJob(map[string]any{"devices": []string{d1, d2}, "interfaces": []string{"eth0"}, "filter": "udp port 53"})
		if v.ID < 1 || v.State != JobActive || v.CancelRequestedAt != nil {
			t.Fatalf("new job = %+v", v)
		}
		if d := v.CreatedAt.Sub(start); d < -time.Second || d > 5*time.Second {
			t.Errorf("created_at %v, want about %v", v.CreatedAt, start)
		}
		// The defaults: 60s (no stop condition given), the policy's
		// max_bytes, snaplen 262144, expiry in 10m, the console.
		want := JobView{
			ID: v.ID, CreatedAt: v.CreatedAt, ExpiresAt: v.CreatedAt.Add(DefaultJobExpiry),
			Devices: sorted(d1, d2), Interfaces: []string{"eth0"}, Filter: "udp port 53", SnapLen: 262144,
			Duration: jobapi.Duration(time.Minute), MaxBytes: 1 << 30, Destination: "console", State: JobActive,
		}
		hosts := map[string]string{d1: "sensor-1", d2: "sensor-2"}
		for _, d := range want.Devices {
			want.Runs = append(want.Runs, RunView{Device: d, Hostname: hosts[d], State: store.RunQueued,
				Transitions: []store.Transition{{State: store.RunQueued, At: v.CreatedAt}},
				Live:        jobPath(v.ID, "/runs/"+d+"/live")})
		}
		ignore := cmpIgnoreRunTimes()
		if d := cmp.Diff(want, v, ignore); d != "" {
			t.Errorf("created job (-want +got):\n%s", d)
		}
		if d := cmp.Diff(v, c.mustJob(v.ID)); d != "" {
			t.Errorf("GET job differs from the creation's answer (-created +got):\n%s", d)
		}
		var raw map[string]any
		c.mustDo(http.StatusOK, "GET", jobPath(v.ID, ""), nil, &raw)
		if raw["duration"] != "1m0s" || raw["cancel_requested_at"] != nil {
			t.Errorf("job JSON: duration %v, cancel_requested_at %v; want \"1m0s\" and null", raw["duration"], raw["cancel_requested_at"])
		}

		// Only a packet limit: the policy's duration bounds it.
		v2 := c.mustCreateJob(map[string]any{"devices": []string{d1}, "interfaces": []string{"eth0"}, "max_packets": 10, "snaplen": 96, "expires_in": "1h"})
		if time.Duration(v2.Duration) != DefaultJobMaxDuration || v2.MaxPackets != 10 || v2.SnapLen != 96 || !v2.ExpiresAt.Equal(v2.CreatedAt.Add(time.Hour)) {
			t.Errorf("job with a packet limit = %+v", v2)
		}
		v3 := c.mustCreateJob(map[string]any{"devices": []string{d2}, "interfaces": []string{"eth0"}, "duration": "5s", "destination": "s3://bucket/jobs"})
		if time.Duration(v3.Duration) != 5*time.Second || v3.Destination != "s3://bucket/jobs/" {
			t.Errorf("job to S3 = %+v", v3)
		}

		// Newest first, paged.
		ids := func(vs []JobView) []int64 {
			var out []int64
			for _, v := range vs {
				out = append(out, v.ID)
			}
			return out
		}
		if d := cmp.Diff([]int64{v3.ID, v2.ID, v.ID}, ids(c.mustJobs(""))); d != "" {
			t.Errorf("list (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]int64{v2.ID}, ids(c.mustJobs("?limit=1&before="+itoa(v3.ID)))); d != "" {
			t.Errorf("list ?limit=1&before=%d (-want +got):\n%s", v3.ID, d)
		}

		// Cancel: the queued runs end at once; a second cancel has
		// nothing left to do.
		var cv JobView
		c.mustDo(http.StatusOK, "POST", jobPath(v.ID, "/cancel"), nil, &cv)
		if cv.State != JobDone || cv.CancelRequestedAt == nil {
			t.Errorf("canceled job: state %s, cancel_requested_at %v", cv.State, cv.CancelRequestedAt)
		}
		for _, r := range cv.Runs {
			last := r.Transitions[len(r.Transitions)-1]
			if r.State != store.RunCanceled || last.State != store.RunCanceled || last.Reason == "" {
				t.Errorf("run of %s after cancel: %s, transitions %+v", r.Hostname, r.State, r.Transitions)
			}
		}
		before := c.mustJobs("")
		code, body := c.do("POST", jobPath(v.ID, "/cancel"), nil)
		if code != http.StatusConflict || !strings.Contains(string(body), "job "+itoa(v.ID)+" has ended: nothing to cancel") {
			t.Errorf("cancel of a finished job: %d %s, want 409", code, body)
		}
		for _, path := range []string{"/api/v1/jobs/999", "/api/v1/jobs/x"} {
			if code, body := c.do("GET", path, nil); code != http.StatusNotFound {
				t.Errorf("GET %s: %d %s, want 404", path, code, body)
			}
			if code, body := c.do("POST", path+"/cancel", nil); code != http.StatusNotFound {
				t.Errorf("POST %s/cancel: %d %s, want 404", path, code, body)
			}
		}
		if code, body := c.do("GET", "/api/v1/jobs?limit=0", nil); code != http.StatusBadRequest {
			t.Errorf("list ?limit=0: %d %s, want 400", code, body)
		}
		if d := cmp.Diff(before, c.mustJobs("")); d != "" {
			t.Errorf("refused requests changed the jobs (-before +after):\n%s", d)
		}
	})
}

// cmpIgnoreRunTimes ignores the runs' updated_at.
func cmpIgnoreRunTimes() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".UpdatedAt"
	}, cmp.Ignore())
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// TestJobCreateRefused: every bad job request gets a 400 that says what
// to do, and changes nothing.
func TestJobCreateRefused(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{MaxPackets: 1000})
	id := c.mustEnroll("sensor-1", "m-1").m.DeviceID()
	gone := c.mustEnroll("sensor-old", "m-2").m.DeviceID()
	c.mustDo(http.StatusOK, "POST", "/api/v1/devices/"+gone+"/revoke", nil, nil)
	c.mustCreateJob(map[string]any{"devices": []string{id}, "interfaces": []string{"eth0"}})

	job := func(kv ...any) map[string]any {
		m := map[string]any{"devices": []string{id}, "interfaces": []string{"eth0"}, "filter": "udp"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	unknown := store.NewID()
	tests := []struct {
		name string
		body any
		want string // the start of the error
	}{
		{"malformed JSON", `{"devices": [`, "malformed JSON"},
		{"not an object", `[]`, "malformed JSON"},
		{"unknown field", `{"devices": ["` + id + `"], "interfaces": ["eth0"], "colour": "red"}`, `malformed JSON: unknown field "colour"`},
		{"no body", ``, "the request body is empty"},
		{"no devices", job("devices", []string{}), "no devices: "},
		{"no interfaces", job("interfaces", nil), "no interfaces: "},
		{"device twice", job("devices", []string{id, id}), "device " + id + " is listed twice"},
		{"unknown device", job("devices", []string{unknown}), "device " + unknown + " is not enrolled: GET /api/v1/devices lists them"},
		{"not a device id", job("devices", []string{"sensor-1"}), "device sensor-1 is not enrolled: GET /api/v1/devices lists them"},
		{"revoked device", job("devices", []string{id, gone}), "device " + gone + " (sensor-old) is revoked: "},
		{"interface not reported", job("interfaces", []string{"eth0", "eth9"}), "device " + id + " (sensor-1) does not report interface eth9: it has eth0"},
		{"bad interface name", job("interfaces", []string{"eth0", "a/b"}), "interfaces[1]: "},
		{"bad filter", job("filter", "tcp port"), "filter: "},
		{"bad snaplen", job("snaplen", 999999), "snaplen: "},
		{"bad duration", job("duration", "soon"), `duration "soon" is not a duration: give one such as 60s`},
		{"negative duration", job("duration", "-5s"), "duration -5s is negative"},
		{"duration above policy", job("duration", "2h"), "duration 2h is above the console's limit 1h (--job-max-duration)"},
		{"bytes above policy", job("max_bytes", 2<<30), "max_bytes 2GiB is above the console's limit 1GiB (--job-max-bytes)"},
		{"packets above policy", job("max_packets", 1001), "max_packets 1001 is above the console's limit 1000 (--job-max-packets)"},
		{"expiry above policy", job("expires_in", "48h"), "expires_in 48h is above the console's limit 24h (--job-max-expiry)"},
		{"bad expiry", job("expires_in", true), "expires_in true is not a duration"},
		{"bad destination", job("destination", "ftp://host/x"), `destination "ftp://host/x": give "console"`},
		{"bad S3 URL", job("destination", "s3://"), "destination: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, jobs := mustSnapshot(t, c.st), c.mustJobs("")
			code, body := c.do("POST", "/api/v1/jobs", tc.body)
			var eb errorBody
			if err := json.Unmarshal(body, &eb); err != nil || code != http.StatusBadRequest {
				t.Fatalf("%d %s, want 400 with {\"error\": ...}", code, body)
			}
			t.Logf("400 %s", eb.Error)
			if !strings.HasPrefix(eb.Error, tc.want) {
				t.Errorf("error %q, want it to start with %q", eb.Error, tc.want)
			}
			if strings.Contains(eb.Error, "\n") {
				t.Errorf("error %q is more than one line", eb.Error)
			}
			mustUnchanged(t, c.st, before)
			if d := cmp.Diff(jobs, c.mustJobs("")); d != "" {
				t.Errorf("the jobs changed (-before +after):\n%s", d)
			}
		})
	}
}

func TestJobPolicyApply(t *testing.T) {
	p := JobPolicy{MaxPackets: 500}.withDefaults()
	tests := []struct {
		name string
		in   jobLimits
		want jobLimits
		msg  string
	}{
		{"nothing asked", jobLimits{}, jobLimits{Duration: time.Minute, MaxBytes: 1 << 30, MaxPackets: 500, ExpiresIn: 10 * time.Minute}, ""},
		{"bytes only", jobLimits{MaxBytes: 1 << 20}, jobLimits{Duration: time.Hour, MaxBytes: 1 << 20, MaxPackets: 500, ExpiresIn: 10 * time.Minute}, ""},
		{"all at the limits", jobLimits{Duration: time.Hour, MaxBytes: 1 << 30, MaxPackets: 500, ExpiresIn: 24 * time.Hour},
			jobLimits{Duration: time.Hour, MaxBytes: 1 << 30, MaxPackets: 500, ExpiresIn: 24 * time.Hour}, ""},
		{"duration above", jobLimits{Duration: 90 * time.Minute}, jobLimits{}, "duration 1h30m is above the console's limit 1h (--job-max-duration): ask for 1h or less"},
		{"bytes above", jobLimits{MaxBytes: 1<<30 + 1}, jobLimits{}, "max_bytes 1073741825 bytes is above the console's limit 1GiB (--job-max-bytes): ask for 1073741824 or less"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := p.apply(tc.in)
			if msg != tc.msg {
				t.Fatalf("message %q, want %q", msg, tc.msg)
			}
			if msg == "" {
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			}
		})
	}
	// A policy shorter than the defaults bounds them.
	short := JobPolicy{MaxDuration: 10 * time.Second, MaxExpiry: time.Minute}.withDefaults()
	if got, _ := short.apply(jobLimits{}); got.Duration != 10*time.Second || got.ExpiresIn != time.Minute {
		t.Errorf("defaults under a short policy = %+v", got)
	}
}

// TestJobExpiry: a job for a device that never asks expires at its
// expiry, by the console's loop.
func TestJobExpiry(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	id := c.mustEnroll("offline", "m").m.DeviceID()
	v := c.mustCreateJob(map[string]any{"devices": []string{id}, "interfaces": []string{"eth0"}, "expires_in": "1s"})
	var got JobView
	if !waitFor(5*time.Second, func() bool { got = c.mustJob(v.ID); return got.State == JobDone }) {
		t.Fatalf("job not expired 4s after its expiry: %+v", got)
	}
	if late := time.Since(v.ExpiresAt); late > 2500*time.Millisecond {
		t.Errorf("expired %v after its expiry, want within about 2s", late)
	}
	r := got.Runs[0]
	if r.State != store.RunExpired || r.Transitions[len(r.Transitions)-1].Reason != "no device accepted it before it expired" {
		t.Errorf("run = %+v", r)
	}
}

// TestJobLongPoll: a device's long poll with jobs=SEQ wakes within a
// second when a job is created for it and when its run is canceled; one
// without jobs keeps waiting on the generation alone.
func TestJobLongPoll(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "m-1")
	id := a.m.DeviceID()
	url := c.srv.AgentURL()

	mustPoll(t, <-goPoll(a, url, "after=0&jobs=0&wait=0s"), http.StatusNotModified)

	// Without jobs: job creation does not end the poll.
	old := goPoll(a, url, "after=0&wait=2s")
	ch := goPoll(a, url, "after=0&jobs=0&wait=20s")
	time.Sleep(300 * time.Millisecond)
	v := c.mustCreateJob(map[string]any{"devices": []string{id}, "interfaces": []string{"eth0"}, "filter": "udp port 53", "duration": "30s"})
	created := time.Now()
	got := mustPollWoken(t, ch, created)
	if got.Generation != 0 || got.JobsSeq < 1 || len(got.Jobs) != 1 {
		t.Fatalf("poll after the job: %+v", got)
	}
	j := got.Jobs[0]
	want := jobapi.AgentJob{ID: v.ID, State: "queued", CreatedAt: v.CreatedAt, ExpiresAt: v.ExpiresAt, Interfaces: []string{"eth0"},
		Filter: "udp port 53", SnapLen: 262144, Duration: jobapi.Duration(30 * time.Second), MaxBytes: 1 << 30, Destination: "console"}
	if d := cmp.Diff(want, j); d != "" {
		t.Errorf("the poll's job (-want +got):\n%s", d)
	}
	if r := <-old; r.code != http.StatusNotModified {
		t.Errorf("poll without jobs: %d %s, want 304 (it waits on the generation only)", r.code, r.body)
	}
	// Newer already: at once.
	start := time.Now()
	if r := <-goPoll(a, url, "after=0&jobs=0&wait=20s"); r.code != http.StatusOK || time.Since(start) > time.Second {
		t.Errorf("poll behind jobs_seq: %d after %v, want 200 at once", r.code, time.Since(start))
	}

	// Claimed, then canceled: the poll wakes with cancel_requested.
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	seq := got.JobsSeq
	got = mustPoll(t, <-goPoll(a, url, "after=0&jobs=0&wait=0s"), http.StatusOK)
	if got.JobsSeq != seq || len(got.Jobs) != 1 || got.Jobs[0].State != "accepted" || got.Jobs[0].Claim != claim {
		t.Fatalf("poll after the claim: %+v", got)
	}
	ch = goPoll(a, url, "after=0&jobs="+itoa(seq)+"&wait=20s")
	time.Sleep(300 * time.Millisecond)
	c.mustDo(http.StatusOK, "POST", jobPath(v.ID, "/cancel"), nil, nil)
	got = mustPollWoken(t, ch, time.Now())
	if got.JobsSeq <= seq || len(got.Jobs) != 1 || !got.Jobs[0].CancelRequested || got.Jobs[0].State != "accepted" {
		t.Errorf("poll after the cancel: %+v", got)
	}
	if code, body := a.do("GET", ConfigPath+"?after=0&jobs=x", nil); code != http.StatusBadRequest {
		t.Errorf("jobs=x: %d %s, want 400", code, body)
	}
}

// mustPoll decodes a poll's answer, which must be code.
func mustPoll(t *testing.T, r pollResult, code int) ConfigResponse {
	t.Helper()
	if r.err != nil || r.code != code {
		t.Fatalf("poll: %d %s %v, want %d", r.code, r.body, r.err, code)
	}
	var cfg ConfigResponse
	if code == http.StatusOK {
		if err := json.Unmarshal(r.body, &cfg); err != nil {
			t.Fatalf("poll answered %s: %v", r.body, err)
		}
	}
	return cfg
}

// mustPollWoken waits for a poll that a change at changed must end
// within a second, with 200.
func mustPollWoken(t *testing.T, ch <-chan pollResult, changed time.Time) ConfigResponse {
	t.Helper()
	select {
	case r := <-ch:
		if d := r.at.Sub(changed); d > time.Second {
			t.Errorf("poll answered %v after the change, want within 1s", d)
		}
		return mustPoll(t, r, http.StatusOK)
	case <-time.After(5 * time.Second):
		t.Fatal("the change did not end the poll")
	}
	return ConfigResponse{}
}
