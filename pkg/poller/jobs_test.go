package poller

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/jobapi"
)

// jobsRecorder is the poller's job runner in these tests: it keeps every
// offer.
type jobsRecorder struct {
	mu     sync.Mutex
	offers [][]jobapi.AgentJob
}

func (r *jobsRecorder) Offer(jobs []jobapi.AgentJob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.offers = append(r.offers, jobs)
}

// ids are each offer's job ids.
func (r *jobsRecorder) ids() [][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := [][]int64{}
	for _, o := range r.offers {
		ids := []int64{}
		for _, j := range o {
			ids = append(ids, j.ID)
		}
		out = append(out, ids)
	}
	return out
}

func (r *jobsRecorder) last() []jobapi.AgentJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.offers) == 0 {
		return nil
	}
	return r.offers[len(r.offers)-1]
}

const job42 = `{"id":42,"state":"queued","claim":"","created_at":"2026-01-02T03:04:05Z","expires_at":"2026-01-02T03:14:05Z",
"cancel_requested":false,"interfaces":["eth1"],"filter":"host 198.18.4.7","snaplen":262144,"duration":"1m0s",
"max_packets":0,"max_bytes":1073741824,"destination":"console"}`

// TestJobsOffered: with a job runner the poll asks jobs=SEQ; an answer
// whose generation did not change but whose jobs did is handed to the
// runner only (no apply, no backoff), one the poller cannot read is left
// out, a new generation is applied and its jobs offered too.
func TestJobsOffered(t *testing.T) {
	fc := newFakeConsole(t)
	out := t.TempDir()
	fc.set(1, captureJSON(out, "web:tcp"))
	fc.setJobs(0, "[]")
	rec := &jobsRecorder{}
	tp := mustPoller(t, fc, "", Options{Jobs: rec, Wait: 30 * time.Second})
	tp.start()
	mustEventually(t, "generation 1 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 1, tp.log.String()
	})
	mustEventually(t, "a poll after 1 waiting", func() (bool, string) {
		r := fc.configRequests()
		return len(r) == 2, fmt.Sprint(r)
	})

	changed := time.Now()
	fc.setJobs(1, "["+job42+"]")
	mustEventually(t, "job 42 offered", func() (bool, string) {
		return len(rec.last()) == 1, fmt.Sprint(rec.ids())
	})
	if d := time.Since(changed); d > 5*time.Second {
		t.Errorf("job offered %v after the change: the long poll did not answer at once", d)
	}
	want := jobapi.AgentJob{ID: 42, State: "queued",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ExpiresAt: time.Date(2026, 1, 2, 3, 14, 5, 0, time.UTC),
		Interfaces: []string{"eth1"}, Filter: "host 198.18.4.7", SnapLen: 262144,
		Duration: jobapi.Duration(time.Minute), MaxBytes: 1 << 30, Destination: "console"}
	if diff := cmp.Diff(want, rec.last()[0]); diff != "" {
		t.Errorf("offered job (-want +got):\n%s", diff)
	}

	// A job the poller cannot read is left out; the good one is offered.
	fc.setJobs(2, `[{"id":"x"},`+job42+`]`)
	mustEventually(t, "the second offer", func() (bool, string) {
		return tp.Status().JobsSeq == 2, fmt.Sprint(rec.ids())
	})
	mustEventually(t, "a poll after jobs 2", func() (bool, string) {
		r := fc.configRequests()
		return len(r) > 0 && r[len(r)-1] == "after=1&jobs=2&wait=30s", fmt.Sprint(r)
	})
	fc.set(2, captureJSON(out, "dns:udp"))
	mustEventually(t, "generation 2 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 2, tp.log.String()
	})
	if diff := cmp.Diff([][]int64{{}, {42}, {42}, {42}}, rec.ids()); diff != "" {
		t.Errorf("offers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"web@eth0"}, {"dns@eth0"}}, tp.mgr.applied()); diff != "" {
		t.Errorf("applies (-want +got): a jobs answer applied the config:\n%s", diff)
	}
	mustEventually(t, "a poll after 2", func() (bool, string) {
		r := fc.configRequests()
		return len(r) > 0 && r[len(r)-1] == "after=2&jobs=2&wait=30s", fmt.Sprint(r)
	})
	reqs := fc.configRequests()
	wantReqs := []string{"jobs=0&wait=30s", "after=1&jobs=0&wait=30s", "after=1&jobs=1&wait=30s", "after=1&jobs=2&wait=30s", "after=2&jobs=2&wait=30s"}
	if diff := cmp.Diff(wantReqs, reqs); diff != "" {
		t.Errorf("config requests (-want +got):\n%s", diff)
	}
	if s := tp.Status(); s.Failures != 0 || s.LastError != "" {
		t.Errorf("status: failures %d, last error %q: a jobs answer counted as a failure", s.Failures, s.LastError)
	}
	if !strings.Contains(tp.log.String(), "a job from the console cannot be read") {
		t.Errorf("the unreadable job was not logged:\n%s", tp.log)
	}
}

// TestJobsNotNewer: an answer with neither a newer generation nor a newer
// jobs sequence number is the console's mistake: the poller backs off,
// offers nothing and applies nothing.
func TestJobsNotNewer(t *testing.T) {
	fc := newFakeConsole(t)
	fc.set(1, "[]")
	fc.setJobs(3, "["+job42+"]")
	rec := &jobsRecorder{}
	tp := mustPoller(t, fc, "", Options{Jobs: rec, Wait: 100 * time.Millisecond})
	tp.start()
	mustEventually(t, "jobs 3 offered", func() (bool, string) {
		return tp.Status().JobsSeq == 3 && tp.Status().AppliedGeneration == 1, fmt.Sprint(rec.ids())
	})
	fc.answer(0, `{"generation":1,"captures":[],"jobs_seq":3,"jobs":[]}`)
	mustEventually(t, "a few polls backed off", func() (bool, string) {
		return tp.Status().Failures >= 3, fmt.Sprint(tp.Status())
	})
	if diff := cmp.Diff([][]int64{{42}}, rec.ids()); diff != "" {
		t.Errorf("offers (-want +got):\n%s", diff)
	}
	if n := len(tp.mgr.applied()); n != 1 {
		t.Errorf("%d applies, want 1", n)
	}
}

// TestNoJobsWithoutRunner: without a job runner the poll does not ask
// for jobs, and a jobs change alone does not wake it.
func TestNoJobsWithoutRunner(t *testing.T) {
	fc := newFakeConsole(t)
	fc.set(1, "[]")
	tp := mustPoller(t, fc, "", Options{Wait: 300 * time.Millisecond})
	tp.start()
	mustEventually(t, "generation 1 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 1, tp.log.String()
	})
	fc.setJobs(5, "["+job42+"]")
	mustEventually(t, "three polls", func() (bool, string) {
		return len(fc.configRequests()) >= 3, fmt.Sprint(fc.configRequests())
	})
	for _, q := range fc.configRequests() {
		if strings.Contains(q, "jobs=") {
			t.Errorf("poll %q asks for jobs without a job runner", q)
		}
	}
	if s := tp.Status(); s.JobsSeq != 0 || s.Failures != 0 {
		t.Errorf("status %+v: want jobs_seq 0 and no failures", s)
	}
}
