package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/storage"
)

// newClaim is a claim token as agents make them: 128 random bits, hex.
func newClaim(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// post sends v as JSON to the agent API.
func (a *agentClient) post(path string, v any) (int, []byte) {
	a.t.Helper()
	return a.do("POST", path, mustJSON(a.t, v))
}

// mustClaim claims device a's run of job id.
func mustClaim(t *testing.T, a *agentClient, id int64, claim string) jobapi.AgentJob {
	t.Helper()
	code, body := a.post(jobapi.Path(jobapi.ClaimPath, id), jobapi.ClaimRequest{Claim: claim})
	if code != http.StatusOK {
		t.Fatalf("claim job %d: %d %s", id, code, body)
	}
	var j jobapi.AgentJob
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// mustControl expects 200 with a RunControl.
func mustControl(t *testing.T, what string, code int, body []byte) jobapi.RunControl {
	t.Helper()
	var rc jobapi.RunControl
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s, want 200", what, code, body)
	}
	if err := json.Unmarshal(body, &rc); err != nil {
		t.Fatalf("%s: %s: %v", what, body, err)
	}
	return rc
}

// mustStatus expects code, with an error that contains want.
func mustStatus(t *testing.T, what string, code int, body []byte, wantCode int, want string) {
	t.Helper()
	var eb errorBody
	if code != wantCode || json.Unmarshal(body, &eb) != nil || !strings.Contains(eb.Error, want) {
		t.Errorf("%s: %d %s, want %d with an error containing %q", what, code, body, wantCode, want)
	}
}

func TestJobClaim(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustJobConsole(t, b.open(t), nil, "", JobPolicy{})
		a, other := c.mustEnroll("sensor-1", "m-1"), c.mustEnroll("sensor-2", "m-2")
		v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
		path := jobapi.Path(jobapi.ClaimPath, v.ID)

		// Many attempts at once: exactly one wins.
		const n = 16
		claims := make([]string, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			claims[i] = newClaim(t)
			wg.Go(func() {
				code, _, err := agentDo(a.client, a.url, "POST", path, mustJSON(t, jobapi.ClaimRequest{Claim: claims[i]}))
				if err != nil {
					t.Errorf("claim: %v", err)
				}
				codes[i] = code
			})
		}
		wg.Wait()
		winner := -1
		count := map[int]int{}
		for i, code := range codes {
			count[code]++
			if code == http.StatusOK {
				winner = i
			}
		}
		if d := cmp.Diff(map[int]int{http.StatusOK: 1, http.StatusConflict: n - 1}, count); d != "" || winner < 0 {
			t.Fatalf("answers of %d concurrent claims (-want +got):\n%s", n, d)
		}
		// The winner's retry (a timeout, say) gets the run as it is.
		j := mustClaim(t, a, v.ID, claims[winner])
		if j.State != "accepted" || j.Claim != claims[winner] || j.ID != v.ID || time.Duration(j.Duration) != time.Minute || j.Destination != "console" {
			t.Errorf("retried claim = %+v", j)
		}
		got := c.mustJob(v.ID)
		if tr := got.Runs[0].Transitions; len(tr) != 2 || tr[1].State != store.RunAccepted {
			t.Errorf("transitions after the claims: %+v, want queued, accepted", tr)
		}
		code, body := a.post(path, jobapi.ClaimRequest{Claim: claims[(winner+1)%n]})
		mustStatus(t, "a losing claim again", code, body, http.StatusConflict, "another attempt")

		// Another device, another job, a bad claim.
		code, body = other.post(path, jobapi.ClaimRequest{Claim: newClaim(t)})
		mustStatus(t, "claim by another device", code, body, http.StatusNotFound, "no job")
		code, body = a.post(jobapi.Path(jobapi.ClaimPath, 999), jobapi.ClaimRequest{Claim: newClaim(t)})
		mustStatus(t, "claim of no job", code, body, http.StatusNotFound, "no job 999")
		code, body = a.post(path, jobapi.ClaimRequest{Claim: "x"})
		mustStatus(t, "a bad claim", code, body, http.StatusBadRequest, "is not a claim token")

		// A run that ended: 410.
		v2 := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
		c.mustDo(http.StatusOK, "POST", jobPath(v2.ID, "/cancel"), nil, nil)
		code, body = a.post(jobapi.Path(jobapi.ClaimPath, v2.ID), jobapi.ClaimRequest{Claim: newClaim(t)})
		mustStatus(t, "claim of a canceled run", code, body, http.StatusGone, "has ended (canceled")
		if d := cmp.Diff(got, c.mustJob(v.ID)); d != "" {
			t.Errorf("refused claims changed the job (-before +after):\n%s", d)
		}
	})
}

// TestJobOtherDevice: only the device of a run may touch it; another
// gets 404 from every endpoint.
func TestJobOtherDevice(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a, other := c.mustEnroll("sensor-1", "m-1"), c.mustEnroll("sensor-2", "m-2")
	v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	before := c.mustJob(v.ID)
	data := []byte("not yours")
	sum := sha256.Sum256(data)
	for _, tc := range []struct {
		name string
		do   func() (int, []byte)
	}{
		{"claim", func() (int, []byte) {
			return other.post(jobapi.Path(jobapi.ClaimPath, v.ID), jobapi.ClaimRequest{Claim: claim})
		}},
		{"progress", func() (int, []byte) {
			return other.post(jobapi.Path(jobapi.ProgressPath, v.ID), jobapi.ProgressRequest{Claim: claim, State: "running"})
		}},
		{"cancel check", func() (int, []byte) { return other.do("GET", jobapi.Path(jobapi.RunPath, v.ID), nil) }},
		{"finish", func() (int, []byte) {
			return other.post(jobapi.Path(jobapi.FinishPath, v.ID), jobapi.FinishRequest{Claim: claim, State: "finished"})
		}},
		{"upload status", func() (int, []byte) {
			r := other.upload("HEAD", v.ID, 0, 0, "", nil)
			return r.code, []byte(`{"error":"no job"}`) // HEAD has no body
		}},
		{"upload", func() (int, []byte) {
			r := other.upload("PATCH", v.ID, 0, int64(len(data)), hex.EncodeToString(sum[:]), data)
			return r.code, r.body
		}},
	} {
		code, body := tc.do()
		mustStatus(t, tc.name+" by another device", code, body, http.StatusNotFound, "no job")
	}
	if d := cmp.Diff(before, c.mustJob(v.ID)); d != "" {
		t.Errorf("another device changed the run (-before +after):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(c.srv.cfg.DataDir, jobsDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("another device's upload left files: %v", err)
	}
}

func TestJobProgress(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "m-1")
	v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	progress := jobapi.Path(jobapi.ProgressPath, v.ID)
	check := jobapi.Path(jobapi.RunPath, v.ID)

	code, body := a.post(progress, jobapi.ProgressRequest{Claim: claim, State: "running", Progress: jobapi.Progress{Packets: 10, Bytes: 1200, Drops: 1, Size: 2048}})
	if d := cmp.Diff(jobapi.RunControl{State: "running"}, mustControl(t, "progress", code, body)); d != "" {
		t.Errorf("progress answer (-want +got):\n%s", d)
	}
	code, body = a.post(progress, jobapi.ProgressRequest{Claim: claim, Progress: jobapi.Progress{Packets: 20, Bytes: 2400, Drops: 1, Size: 4096}})
	mustControl(t, "progress only", code, body)
	code, body = a.do("GET", check, nil)
	if d := cmp.Diff(jobapi.RunControl{State: "running"}, mustControl(t, "cancel check", code, body)); d != "" {
		t.Errorf("cancel check (-want +got):\n%s", d)
	}
	r := c.mustJob(v.ID).Runs[0]
	var states []store.RunState
	for _, tr := range r.Transitions {
		states = append(states, tr.State)
	}
	if r.Packets != 20 || r.Bytes != 2400 || r.Drops != 1 || r.Size != 4096 ||
		!cmp.Equal(states, []store.RunState{store.RunQueued, store.RunAccepted, store.RunRunning}) {
		t.Errorf("run after progress = %+v", r)
	}

	// Refused: nothing changes.
	before := c.mustJob(v.ID)
	for _, tc := range []struct {
		name string
		req  jobapi.ProgressRequest
		code int
		want string
	}{
		{"another claim", jobapi.ProgressRequest{Claim: newClaim(t), State: "uploading"}, http.StatusConflict, "is not this claim's"},
		{"not a claim", jobapi.ProgressRequest{Claim: "", State: "uploading"}, http.StatusBadRequest, "is not a claim token"},
		{"a terminal state", jobapi.ProgressRequest{Claim: claim, State: "finished"}, http.StatusBadRequest, "end a run with POST"},
		{"not a progress state", jobapi.ProgressRequest{Claim: claim, State: "accepted"}, http.StatusBadRequest, `state "accepted"`},
	} {
		code, body := a.post(progress, tc.req)
		mustStatus(t, tc.name, code, body, tc.code, tc.want)
	}
	code, body = a.do("POST", progress, []byte(`{"claim": "`+claim+`", "colour": "red"}`))
	mustStatus(t, "unknown field", code, body, http.StatusBadRequest, "unknown field")
	if d := cmp.Diff(before, c.mustJob(v.ID)); d != "" {
		t.Errorf("refused progress changed the run (-before +after):\n%s", d)
	}

	// uploading → running is not a transition.
	code, body = a.post(progress, jobapi.ProgressRequest{Claim: claim, State: "uploading"})
	if rc := mustControl(t, "uploading", code, body); rc.State != "uploading" {
		t.Errorf("state after uploading: %+v", rc)
	}
	code, body = a.post(progress, jobapi.ProgressRequest{Claim: claim, State: "running"})
	mustStatus(t, "uploading to running", code, body, http.StatusUnprocessableEntity, "is uploading: it cannot become running")

	// A cancel shows in the cancel check and in progress.
	c.mustDo(http.StatusOK, "POST", jobPath(v.ID, "/cancel"), nil, nil)
	code, body = a.do("GET", check, nil)
	if d := cmp.Diff(jobapi.RunControl{State: "uploading", CancelRequested: true}, mustControl(t, "cancel check after the cancel", code, body)); d != "" {
		t.Errorf("cancel check after the cancel (-want +got):\n%s", d)
	}
	code, body = a.post(progress, jobapi.ProgressRequest{Claim: claim})
	if rc := mustControl(t, "progress after the cancel", code, body); !rc.CancelRequested || rc.LiveWanted {
		t.Errorf("progress after the cancel: %+v", rc)
	}
	code, body = a.do("GET", jobapi.Path(jobapi.RunPath, 999), nil)
	mustStatus(t, "cancel check of no job", code, body, http.StatusNotFound, "no job 999")
}

func TestJobFinish(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "m-1")
	v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	finish := jobapi.Path(jobapi.FinishPath, v.ID)

	code, body := a.post(finish, jobapi.FinishRequest{Claim: claim, State: "bogus"})
	mustStatus(t, "finish bogus", code, body, http.StatusBadRequest, `state "bogus"`)
	code, body = a.post(finish, jobapi.FinishRequest{Claim: claim, State: "expired"})
	mustStatus(t, "finish expired", code, body, http.StatusBadRequest, `state "expired"`)

	req := jobapi.FinishRequest{Claim: claim, State: "canceled", Error: "canceled by an admin", Progress: jobapi.Progress{Packets: 5, Bytes: 500, Size: 900}}
	for i := range 2 { // the same end again is answered as the first
		code, body := a.post(finish, req)
		if d := cmp.Diff(jobapi.RunControl{State: "canceled"}, mustControl(t, "finish", code, body)); d != "" {
			t.Errorf("finish #%d (-want +got):\n%s", i+1, d)
		}
	}
	got := c.mustJob(v.ID)
	r := got.Runs[0]
	if r.State != store.RunCanceled || r.Error != "canceled by an admin" || r.Packets != 5 || r.Size != 900 || got.State != JobDone {
		t.Errorf("run after finish = %+v", r)
	}
	if n := len(r.Transitions); n != 3 || r.Transitions[2].State != store.RunCanceled || r.Transitions[2].Reason != "canceled by an admin" {
		t.Errorf("transitions after two finishes: %+v", r.Transitions)
	}
	code, body = a.post(finish, jobapi.FinishRequest{Claim: claim, State: "finished"})
	mustStatus(t, "another end", code, body, http.StatusGone, "has ended (canceled: canceled by an admin)")
	code, body = a.post(jobapi.Path(jobapi.ProgressPath, v.ID), jobapi.ProgressRequest{Claim: claim})
	mustStatus(t, "progress after the end", code, body, http.StatusGone, "has ended")
	if d := cmp.Diff(got, c.mustJob(v.ID)); d != "" {
		t.Errorf("refused requests changed the run (-before +after):\n%s", d)
	}
}

// An agent that delivered an S3 job's result itself says where in its
// end; the console records it, refuses a location outside the job's
// destination or a console job's location, and points downloads at it.
func TestJobFinishDelivered(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "m-1")
	v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"},
		"destination": "s3://captures/jobs/"})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	finish := jobapi.Path(jobapi.FinishPath, v.ID)
	sum := strings.Repeat("ab", 32)
	code, body := a.post(finish, jobapi.FinishRequest{Claim: claim, State: "finished",
		Result: &jobapi.Result{Location: "s3://captures/jobs/early.pcapng", Size: 1, SHA256: sum}})
	mustStatus(t, "an accepted run finished", code, body, http.StatusUnprocessableEntity, "cannot become finished")
	if r := c.mustJob(v.ID).Runs[0]; r.Result != nil {
		t.Errorf("a refused end attached its result: %+v", r.Result)
	}
	code, body = a.post(jobapi.Path(jobapi.ProgressPath, v.ID), jobapi.ProgressRequest{Claim: claim, State: "uploading"})
	mustControl(t, "uploading", code, body)
	end := func(res jobapi.Result) jobapi.FinishRequest {
		return jobapi.FinishRequest{Claim: claim, State: "finished", Progress: jobapi.Progress{Packets: 3, Size: 700}, Result: &res}
	}
	before := c.mustJob(v.ID)
	for _, bad := range []struct {
		res  jobapi.Result
		code int
		want string
	}{
		{jobapi.Result{Location: "s3://other/jobs/x.pcapng", Size: 700, SHA256: sum}, http.StatusBadRequest, "not an object under the job's destination"},
		{jobapi.Result{Location: "s3://captures/jobs/", Size: 700, SHA256: sum}, http.StatusBadRequest, "not an object under"},
		{jobapi.Result{Location: "s3://captures/jobs/x.pcapng", Size: 700, SHA256: "nothex"}, http.StatusBadRequest, "64 hex digits"},
		{jobapi.Result{Location: "s3://captures/jobs/x.pcapng", Size: 1 << 40, SHA256: sum}, http.StatusRequestEntityTooLarge, "above job"},
	} {
		code, body := a.post(finish, end(bad.res))
		mustStatus(t, "finish with "+bad.res.Location, code, body, bad.code, bad.want)
	}
	if d := cmp.Diff(before, c.mustJob(v.ID)); d != "" {
		t.Errorf("refused ends changed the run (-before +after):\n%s", d)
	}
	loc := "s3://captures/jobs/sensor-1/job-1/2026-12-01/capture.pcapng"
	for range 2 { // repeated: the same result, one end
		code, body := a.post(finish, end(jobapi.Result{Location: loc, Size: 700, SHA256: sum}))
		mustControl(t, "finish delivered", code, body)
	}
	r := c.mustJob(v.ID).Runs[0]
	if r.State != store.RunFinished || r.Result == nil || r.Result.Location != loc || r.Result.Size != 700 || r.Result.SHA256 != sum {
		t.Fatalf("run after a delivered end: %+v (result %+v)", r, r.Result)
	}
	resp, body := c.download(v.ID, a.m.DeviceID())
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), loc) {
		t.Errorf("download of a delivered result: %d %s, want 409 naming %s", resp.StatusCode, body, loc)
	}

	cv := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
	claim2 := newClaim(t)
	mustClaim(t, a, cv.ID, claim2)
	code, body = a.post(jobapi.Path(jobapi.ProgressPath, cv.ID), jobapi.ProgressRequest{Claim: claim2, State: "running"})
	mustControl(t, "running", code, body)
	code, body = a.post(jobapi.Path(jobapi.FinishPath, cv.ID), jobapi.FinishRequest{Claim: claim2, State: "finished",
		Result: &jobapi.Result{Location: "s3://captures/x", Size: 1, SHA256: sum}})
	mustStatus(t, "a console job's end with a location", code, body, http.StatusConflict, "goes to the console")
}

// uploadResult is the answer to HEAD or PATCH of a run's pcap.
type uploadResult struct {
	code     int
	offset   string
	complete string
	body     []byte
	err      error
}

// upload sends HEAD or PATCH of job id's pcap; hdr are more headers, in
// pairs.
func (a *agentClient) upload(method string, id, offset, total int64, sum string, body []byte, hdr ...string) uploadResult {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return a.uploadFrom(method, id, offset, total, sum, rd, int64(len(body)), hdr...)
}

func (a *agentClient) uploadFrom(method string, id, offset, total int64, sum string, body io.Reader, n int64, hdr ...string) uploadResult {
	req, err := http.NewRequest(method, a.url+jobapi.Path(jobapi.PcapPath, id), body)
	if err != nil {
		a.t.Fatal(err)
	}
	if method == "PATCH" {
		req.ContentLength = n
		req.Header.Set("Content-Type", jobapi.UploadContentType)
		req.Header.Set(jobapi.HeaderOffset, strconv.FormatInt(offset, 10))
		req.Header.Set(jobapi.HeaderLength, strconv.FormatInt(total, 10))
		req.Header.Set(jobapi.HeaderSHA256, sum)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return uploadResult{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return uploadResult{code: resp.StatusCode, offset: resp.Header.Get(jobapi.HeaderOffset), complete: resp.Header.Get(jobapi.HeaderComplete), body: b}
}

// mustUpload expects an upload answer.
func mustUpload(t *testing.T, what string, r uploadResult, code int, offset int64, complete string) {
	t.Helper()
	if r.err != nil || r.code != code || r.offset != strconv.FormatInt(offset, 10) || r.complete != complete {
		t.Fatalf("%s: %d, Upload-Offset %q, Upload-Complete %q, %s %v; want %d, %d, %q", what, r.code, r.offset, r.complete, r.body, r.err, code, offset, complete)
	}
}

// download GETs a run's pcap from the admin API.
func (c *testConsole) download(id int64, device string, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.srv.AdminURL()+jobPath(id, "/runs/"+device+"/pcap"), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestJobUpload: the resumable upload of a run's result, through a
// broken-off PATCH and a console restart, refusing a wrong offset, a
// wrong SHA-256 and a file too large; then the download is the file.
func TestJobUpload(t *testing.T) {
	st := backends[0].open(t)
	c := mustJobConsole(t, st, nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "m-1")
	dev := a.m.DeviceID()
	v := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}, "max_bytes": 2 << 20})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)

	data := make([]byte, 1536<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	sum, total := hex.EncodeToString(s[:]), int64(len(data))

	resp, body := c.download(v.ID, dev)
	mustStatus(t, "download before the upload", resp.StatusCode, body, http.StatusConflict, "run is accepted: its pcap is not uploaded yet")
	mustUpload(t, "HEAD before the upload", a.upload("HEAD", v.ID, 0, 0, "", nil), http.StatusOK, 0, "?0")

	// Refused before anything is kept.
	limit := int64(2<<20 + jobapi.UploadSlack)
	r := a.upload("PATCH", v.ID, 0, limit+1, sum, data[:1024])
	mustStatus(t, "too large", r.code, r.body, http.StatusRequestEntityTooLarge, "is above job")
	r = a.upload("PATCH", v.ID, 0, total, sum, data[:1024], "Content-Type", "application/json")
	mustStatus(t, "wrong Content-Type", r.code, r.body, http.StatusUnsupportedMediaType, jobapi.UploadContentType)
	r = a.upload("PATCH", v.ID, 0, total, "abc", data[:1024])
	mustStatus(t, "bad Upload-SHA256", r.code, r.body, http.StatusBadRequest, jobapi.HeaderSHA256)
	mustUpload(t, "HEAD after the refusals", a.upload("HEAD", v.ID, 0, 0, "", nil), http.StatusOK, 0, "?0")

	// A whole file whose SHA-256 is not the one given: discarded.
	wrong := strings.Repeat("0", 64)
	r = a.upload("PATCH", v.ID, 0, total, wrong, data)
	mustStatus(t, "wrong SHA-256", r.code, r.body, http.StatusUnprocessableEntity, "upload the file again from offset 0")
	mustUpload(t, "HEAD after the wrong SHA-256", a.upload("HEAD", v.ID, 0, 0, "", nil), http.StatusOK, 0, "?0")

	// The first 512 KiB; then a PATCH from the wrong offset.
	const first = 512 << 10
	mustUpload(t, "first part", a.upload("PATCH", v.ID, 0, total, sum, data[:first]), http.StatusNoContent, first, "?0")
	r = a.upload("PATCH", v.ID, 0, total, sum, data[:first])
	mustUpload(t, "PATCH from the wrong offset", r, http.StatusConflict, first, "")
	mustStatus(t, "PATCH from the wrong offset", r.code, r.body, http.StatusConflict, "resume from 524288")

	// A PATCH that breaks off midway: the console keeps what it got.
	pr, pw := io.Pipe()
	done := make(chan uploadResult, 1)
	go func() { done <- a.uploadFrom("PATCH", v.ID, first, total, sum, pr, total-first) }()
	const sent = 256 << 10
	if _, err := pw.Write(data[first : first+sent]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	pw.CloseWithError(errors.New("the agent lost its link"))
	if r := <-done; r.err == nil {
		t.Fatalf("the broken-off PATCH was answered %d %s", r.code, r.body)
	}
	r = a.upload("HEAD", v.ID, 0, 0, "", nil)
	held, err := strconv.ParseInt(r.offset, 10, 64)
	if r.code != http.StatusOK || err != nil || held <= first || held > first+sent || r.complete != "?0" {
		t.Fatalf("HEAD after the broken-off PATCH: %d, Upload-Offset %q, %q; want 200 with %d < offset <= %d", r.code, r.offset, r.complete, first, first+sent)
	}

	// The console restarts; the upload resumes where it was.
	c.stop()
	c = mustJobConsole(t, st, c.ca, c.srv.cfg.DataDir, JobPolicy{})
	a.url = c.srv.AgentURL()
	mustUpload(t, "HEAD after the restart", a.upload("HEAD", v.ID, 0, 0, "", nil), http.StatusOK, held, "?0")
	if r := c.mustJob(v.ID).Runs[0]; r.State != store.RunAccepted || r.Result != nil {
		t.Fatalf("run after the restart = %+v", r)
	}
	mustUpload(t, "the rest", a.upload("PATCH", v.ID, held, total, sum, data[held:]), http.StatusNoContent, total, "?1")

	// Again: idempotent; another file: refused.
	mustUpload(t, "PATCH after the end", a.upload("PATCH", v.ID, 0, total, sum, data), http.StatusNoContent, total, "?1")
	mustUpload(t, "HEAD after the end", a.upload("HEAD", v.ID, 0, 0, "", nil), http.StatusOK, total, "?1")
	r = a.upload("PATCH", v.ID, 0, total, wrong, data)
	mustStatus(t, "another file after the end", r.code, r.body, http.StatusConflict, "is stored already")
	for _, st := range []string{"running", "uploading"} {
		code, body := a.post(jobapi.Path(jobapi.ProgressPath, v.ID), jobapi.ProgressRequest{Claim: claim, State: st})
		mustControl(t, st, code, body)
	}
	code, body := a.post(jobapi.Path(jobapi.FinishPath, v.ID), jobapi.FinishRequest{Claim: claim, State: "finished", Progress: jobapi.Progress{Size: uint64(total)}})
	mustControl(t, "finish", code, body)

	got := c.mustJob(v.ID).Runs[0]
	want := &ResultView{Location: "console", Size: total, SHA256: sum, Download: jobPath(v.ID, "/runs/"+dev+"/pcap")}
	if d := cmp.Diff(want, got.Result); d != "" || got.State != store.RunFinished {
		t.Errorf("run %s, result (-want +got):\n%s", got.State, d)
	}
	dir := filepath.Join(c.srv.cfg.DataDir, jobsDir, itoa(v.ID))
	if _, err := os.Stat(filepath.Join(dir, dev+".pcapng.part")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the .part file is still there: %v", err)
	}

	// The download is the file.
	resp, body = c.download(v.ID, dev)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("download: %d, %d bytes, identical %v", resp.StatusCode, len(body), bytes.Equal(body, data))
	}
	for k, want := range map[string]string{
		"Content-Type":        "application/x-pcapng",
		"Content-Disposition": `attachment; filename="job-` + itoa(v.ID) + `-sensor-1.pcapng"`,
		"Content-Length":      strconv.FormatInt(total, 10),
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("download %s: %q, want %q", k, got, want)
		}
	}
	resp, body = c.download(v.ID, dev, "Range", "bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		t.Errorf("ranged download: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = c.download(v.ID, "nosuchdevice")
	mustStatus(t, "download of no run", resp.StatusCode, body, http.StatusNotFound, "has no run on device")

	// A job to S3 takes no upload here.
	v2 := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}, "destination": "s3://bucket/jobs/"})
	mustClaim(t, a, v2.ID, newClaim(t))
	r = a.upload("PATCH", v2.ID, 0, total, sum, data[:1024])
	mustStatus(t, "upload of an S3 job", r.code, r.body, http.StatusConflict, "goes to s3://bucket/jobs/")
}

// TestJobSilence: a run whose device stops reporting fails after
// --job-silence; the agent's late finish is refused, its upload taken.
func TestJobSilence(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{Silence: 2 * time.Second})
	a := c.mustEnroll("sensor-1", "m-1")
	v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	code, body := a.post(jobapi.Path(jobapi.ProgressPath, v.ID), jobapi.ProgressRequest{Claim: claim, State: "running"})
	mustControl(t, "progress", code, body)
	last := time.Now()

	var got JobView
	if !waitFor(6*time.Second, func() bool { got = c.mustJob(v.ID); return got.State == JobDone }) {
		t.Fatalf("silent run not failed after 6s: %+v", got.Runs)
	}
	if d := time.Since(last); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("failed %v after the last progress, want after the 2s silence, within about a second more", d)
	}
	const reason = "the device stopped reporting for 2s: the agent stopped or lost the console"
	if r := got.Runs[0]; r.State != store.RunFailed || r.Error != reason {
		t.Errorf("silent run = %+v, want failed with %q", r, reason)
	}
	code, body = a.post(jobapi.Path(jobapi.FinishPath, v.ID), jobapi.FinishRequest{Claim: claim, State: "finished"})
	mustStatus(t, "finish after the silence", code, body, http.StatusGone, "has ended (failed: "+reason+")")

	data := []byte("the capture the agent still had")
	s := sha256.Sum256(data)
	// Chunked (no Content-Length): the console hashes the file it holds.
	r := a.uploadFrom("PATCH", v.ID, 0, int64(len(data)), hex.EncodeToString(s[:]), bytes.NewReader(data), -1)
	mustUpload(t, "upload after the silence", r, http.StatusNoContent, int64(len(data)), "?1")
	if r := c.mustJob(v.ID).Runs[0]; r.State != store.RunFailed || r.Result == nil || r.Result.Size != int64(len(data)) {
		t.Errorf("run after the late upload = %+v", r)
	}
}

// TestJobUploadRecovery: a whole file whose result the store did not take
// (the console stopped between the two) is completed by the agent's next
// PATCH, without sending it again.
func TestJobUploadRecovery(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "m-1")
	dev := a.m.DeviceID()
	v := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})
	mustClaim(t, a, v.ID, newClaim(t))
	data := []byte("a whole pcap, renamed into place")
	s := sha256.Sum256(data)
	path := c.srv.resultPath(v.ID, dev)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	n := int64(len(data))
	mustUpload(t, "HEAD", a.upload("HEAD", v.ID, 0, 0, "", nil), http.StatusOK, n, "?0")
	mustUpload(t, "empty PATCH at the end", a.upload("PATCH", v.ID, n, n, hex.EncodeToString(s[:]), []byte{}), http.StatusNoContent, n, "?1")
	if r := c.mustJob(v.ID).Runs[0]; r.Result == nil || r.Result.SHA256 != hex.EncodeToString(s[:]) {
		t.Errorf("result = %+v", r.Result)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Errorf("result file: %q, %v", got, err)
	}

	// A partial upload longer than the file now uploaded (the agent's
	// file changed): discarded, the agent starts again from 0.
	v2 := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})
	mustClaim(t, a, v2.ID, newClaim(t))
	long := bytes.Repeat([]byte("x"), 200)
	ls := sha256.Sum256(long)
	mustUpload(t, "first 100 bytes", a.upload("PATCH", v2.ID, 0, 200, hex.EncodeToString(ls[:]), long[:100]), http.StatusNoContent, 100, "?0")
	mustUpload(t, "a shorter file", a.upload("PATCH", v2.ID, 10, n, hex.EncodeToString(s[:]), data[10:]), http.StatusConflict, 0, "")
	mustUpload(t, "the shorter file from 0", a.upload("PATCH", v2.ID, 0, n, hex.EncodeToString(s[:]), data), http.StatusNoContent, n, "?1")
}

// mustFinishedJob runs a job on a's device to its end with data as the
// result uploaded to the console, and returns its id.
func mustFinishedJob(t *testing.T, c *testConsole, a *agentClient, data []byte) int64 {
	t.Helper()
	v := c.mustCreateJob(map[string]any{"devices": []string{a.m.DeviceID()}, "interfaces": []string{"eth0"}})
	claim := newClaim(t)
	mustClaim(t, a, v.ID, claim)
	code, body := a.post(jobapi.Path(jobapi.ProgressPath, v.ID), jobapi.ProgressRequest{Claim: claim, State: "uploading"})
	mustControl(t, "uploading", code, body)
	s := sha256.Sum256(data)
	mustUpload(t, "PATCH", a.upload("PATCH", v.ID, 0, int64(len(data)), hex.EncodeToString(s[:]), data), http.StatusNoContent, int64(len(data)), "?1")
	code, body = a.post(jobapi.Path(jobapi.FinishPath, v.ID), jobapi.FinishRequest{Claim: claim, State: "finished"})
	mustControl(t, "finish", code, body)
	return v.ID
}

// TestJobResultsSpace: past --job-results-max-bytes, or with less than
// --job-results-min-free available, the results of the jobs that ended
// first are deleted until the rest fit, and a download of one says why
// (410); a job still running keeps its files, whatever the space.
func TestJobResultsSpace(t *testing.T) {
	t.Run("max bytes", func(t *testing.T) {
		dataDir := t.TempDir()
		c := mustJobConsole(t, backends[0].open(t), nil, dataDir, JobPolicy{ResultsMaxBytes: 250})
		a := c.mustEnroll("sensor-1", "m-1")
		dev := a.m.DeviceID()
		result := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 100) }
		var ids []int64
		for i := range 3 {
			ids = append(ids, mustFinishedJob(t, c, a, result(i)))
			c.clock.Advance(10 * time.Minute)
		}
		live := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})
		liveFile := filepath.Join(dataDir, jobsDir, itoa(live.ID), dev+".pcapng.part")
		if err := os.MkdirAll(filepath.Dir(liveFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(liveFile, result(9), 0o600); err != nil { // an upload under way
			t.Fatal(err)
		}
		// 400 bytes, 150 over: the two oldest results go (the running
		// job's 100 bytes count, but stay).
		if err := c.srv.sweepResults(context.Background(), c.clock.Now()); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids[:2] {
			resp, body := c.download(id, dev)
			mustStatus(t, fmt.Sprintf("download of result %d", i), resp.StatusCode, body, http.StatusGone,
				"to keep the results within --job-results-max-bytes 250 bytes: results are deleted oldest first")
			if res := c.mustJob(id).Runs[0].Result; res == nil || res.Download != "" || !strings.Contains(res.Deleted, "--job-results-max-bytes 250 bytes") {
				t.Errorf("job view of deleted result %d: %+v, want deleted with the reason and no download", i, res)
			}
		}
		if res := c.mustJob(ids[2]).Runs[0].Result; res == nil || res.Deleted != "" || res.Download == "" {
			t.Errorf("job view of the kept result: %+v, want a download", res)
		}
		for _, v := range c.mustJobs("") {
			if want := v.ID == ids[0] || v.ID == ids[1]; len(v.Runs) == 1 && v.Runs[0].Result != nil && (v.Runs[0].Result.Deleted != "") != want {
				t.Errorf("job list: job %d's result %+v, deleted should be %v", v.ID, v.Runs[0].Result, want)
			}
		}
		if resp, body := c.download(ids[2], dev); resp.StatusCode != http.StatusOK || !bytes.Equal(body, result(2)) {
			t.Errorf("download of the newest result: %d %q", resp.StatusCode, body)
		}
		if _, err := os.Stat(liveFile); err != nil {
			t.Errorf("the running job's file: %v", err)
		}
		// Within the bound now: a second sweep deletes nothing more.
		if err := c.srv.sweepResults(context.Background(), c.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if resp, _ := c.download(ids[2], dev); resp.StatusCode != http.StatusOK {
			t.Errorf("the newest result after a second sweep: %d", resp.StatusCode)
		}
	})
	t.Run("min free", func(t *testing.T) {
		dataDir := t.TempDir()
		// More free space than any file system has: every ended job's
		// results go, the running job's stay.
		c := mustJobConsole(t, backends[0].open(t), nil, dataDir, JobPolicy{ResultsMinFree: storage.Space{Bytes: 1 << 62}})
		a := c.mustEnroll("sensor-1", "m-1")
		dev := a.m.DeviceID()
		done := mustFinishedJob(t, c, a, []byte("a result"))
		live := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})
		liveDir := filepath.Join(dataDir, jobsDir, itoa(live.ID))
		if err := os.MkdirAll(liveDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(liveDir, dev+".pcapng.part"), []byte("under way"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.srv.sweepResults(context.Background(), c.clock.Now()); err != nil {
			t.Fatal(err)
		}
		resp, body := c.download(done, dev)
		mustStatus(t, "download", resp.StatusCode, body, http.StatusGone, "free on the data directory's file system (--job-results-min-free)")
		if _, err := os.Stat(filepath.Join(liveDir, dev+".pcapng.part")); err != nil {
			t.Errorf("the running job's file: %v", err)
		}
	})
}

// TestJobRetention: the results of a job are deleted from the data
// directory once its runs ended more than --job-retention ago, and a
// download then says so; a job still running, and a job the store does
// not know, keep theirs.
func TestJobRetention(t *testing.T) {
	dataDir := t.TempDir()
	c := mustJobConsole(t, backends[0].open(t), nil, dataDir, JobPolicy{Retention: time.Hour})
	a := c.mustEnroll("sensor-1", "m-1")
	dev := a.m.DeviceID()
	old := mustFinishedJob(t, c, a, []byte("an old result"))
	c.clock.Advance(50 * time.Minute)
	recent := mustFinishedJob(t, c, a, []byte("a recent result"))
	live := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})
	stray := filepath.Join(dataDir, jobsDir, "999")
	if err := os.MkdirAll(stray, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, jobsDir, itoa(live.ID)), 0o700); err != nil {
		t.Fatal(err)
	}

	c.clock.Advance(20 * time.Minute) // old ended 70 min ago, recent 20 min ago
	if err := c.srv.sweepResults(context.Background(), c.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for id, kept := range map[string]bool{itoa(old): false, itoa(recent): true, itoa(live.ID): true, "999": true} {
		_, err := os.Stat(filepath.Join(dataDir, jobsDir, id))
		if got := err == nil; got != kept {
			t.Errorf("jobs/%s kept %v after the sweep, want %v (%v)", id, got, kept, err)
		}
	}
	resp, body := c.download(old, dev)
	mustStatus(t, "download of a deleted result", resp.StatusCode, body, http.StatusGone, "was deleted 1h after the job ended (--job-retention)")
	if res := c.mustJob(old).Runs[0].Result; res == nil || res.Download != "" || !strings.Contains(res.Deleted, "(--job-retention)") {
		t.Errorf("job view of the deleted result: %+v, want deleted with the reason", res)
	}
	if resp, body := c.download(recent, dev); resp.StatusCode != http.StatusOK || string(body) != "a recent result" {
		t.Errorf("download of a kept result: %d %q", resp.StatusCode, body)
	}
}
