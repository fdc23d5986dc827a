package jobrunner

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// ---- the console's agent API, as a protocol peer of the runner ----

// consoleRun is the console's state of one run of the test device.
type consoleRun struct {
	job         jobapi.AgentJob // the spec; State and Claim below
	state       string
	claim       string
	cancel      bool
	liveWanted  bool
	progress    jobapi.Progress
	errText     string
	transitions []transition
	// The upload: part holds the bytes received; result the whole file
	// once its SHA-256 matched.
	part     []byte
	result   []byte
	finishes int // requests that ended the run (not repeats)
	// delivered is the result the agent delivered itself (S3).
	delivered *jobapi.Result
	// Requests seen.
	claims     []string // claim tokens, in order
	progresses []jobapi.ProgressRequest
	patches    []int64 // Upload-Offset of each PATCH that reached the handler
	checks     int
	live       []*liveRecord
}

type transition struct {
	state string
	at    time.Time
}

// liveRecord is one live push the console received.
type liveRecord struct {
	mu    sync.Mutex
	data  bytes.Buffer
	ended bool
}

func (l *liveRecord) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.data.Write(p)
}

func (l *liveRecord) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.data.Bytes()...)
}

func (l *liveRecord) done() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

// fakeConsole serves the agent API of jobs over mTLS.
type fakeConsole struct {
	t   *testing.T
	ca  *pki.CA
	url string

	mu   sync.Mutex
	runs map[int64]*consoleRun
	// refuse, when set, may answer a request with a status instead
	// (after it is recorded): 0 lets it through.
	refuse func(r *http.Request) int
	// loseAnswer, when set and true for a PATCH, stores the chunk but
	// answers 503, as if the answer was lost.
	loseAnswer func(r *http.Request) bool
	// staleHead, when above 0, makes that many HEADs answer an offset a
	// chunk behind the copy (a HEAD that raced a PATCH).
	staleHead int
	// loseClaims and loseFinishes are how many claim and finish answers
	// to lose (the request is carried out, the answer is a 503).
	loseClaims, loseFinishes int
	// hideCancel leaves cancel_requested out of the long poll's list, so
	// that only the cancel check and progress answers carry it.
	hideCancel bool
	// maxActive is the most runs accepted or running at once.
	maxActive int
	requests  []string // method and path of every request
}

func newFakeConsole(t *testing.T) *fakeConsole {
	t.Helper()
	ca, err := pki.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ca.ServerCert(pki.ServerCertConfig{Dir: t.TempDir(), Name: "agent-api", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeConsole{t: t, ca: ca, runs: map[int64]*consoleRun{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fc.handler(), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(l, pki.ServerTLSConfig(sc, pki.AgentListener, nil))) }()
	t.Cleanup(func() { _ = srv.Close() })
	fc.url = "https://" + l.Addr().String()
	return fc
}

// mustClientTLS is the device's client configuration, as certmgr's.
func (fc *fakeConsole) mustClientTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := fc.ca.SignCSR(csr, "dev-1", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      fc.ca.Pool(),
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
	}
}

// addJob queues a run of j for the device.
func (fc *fakeConsole) addJob(j jobapi.AgentJob) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now().UTC()
	}
	if j.Destination == "" {
		j.Destination = jobapi.DestinationConsole
	}
	j.State, j.Claim = "queued", ""
	fc.runs[j.ID] = &consoleRun{job: j, state: "queued", transitions: []transition{{"queued", time.Now()}}}
}

// setRun changes a run as the console would (a cancel, a claim made
// before the test's runner, a state).
func (fc *fakeConsole) setRun(id int64, f func(*consoleRun)) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f(fc.runs[id])
}

// get returns a copy of run id's state.
func (fc *fakeConsole) get(id int64) consoleRun {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	r := *fc.runs[id]
	r.transitions = slices.Clone(r.transitions)
	r.claims = slices.Clone(r.claims)
	r.patches = slices.Clone(r.patches)
	r.progresses = slices.Clone(r.progresses)
	r.live = slices.Clone(r.live)
	return r
}

// agentJobs is what the long poll lists: the runs that have not ended.
func (fc *fakeConsole) agentJobs() []jobapi.AgentJob {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []jobapi.AgentJob
	for _, r := range fc.runs {
		if terminal(r.state) {
			continue
		}
		j := r.agentJob()
		j.CancelRequested = j.CancelRequested && !fc.hideCancel
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b jobapi.AgentJob) int { return int(a.ID - b.ID) })
	return out
}

func (r *consoleRun) agentJob() jobapi.AgentJob {
	j := r.job
	j.State, j.Claim, j.CancelRequested = r.state, r.claim, r.cancel
	return j
}

func (r *consoleRun) control() jobapi.RunControl {
	return jobapi.RunControl{State: r.state, CancelRequested: r.cancel, LiveWanted: r.liveWanted && !terminal(r.state)}
}

func (r consoleRun) states() []string {
	var out []string
	for _, t := range r.transitions {
		out = append(out, t.state)
	}
	return out
}

// at is when the run became state, zero if never.
func (r consoleRun) at(state string) time.Time {
	for _, t := range r.transitions {
		if t.state == state {
			return t.at
		}
	}
	return time.Time{}
}

func terminal(s string) bool {
	return s == "finished" || s == "failed" || s == "canceled" || s == "expired"
}

// canBecome is store.RunState.CanBecome.
func canBecome(from, to string) bool {
	switch from {
	case "queued":
		return to == "accepted" || to == "canceled" || to == "expired"
	case "accepted":
		return to == "running" || to == "uploading" || to == "failed" || to == "canceled"
	case "running":
		return to == "uploading" || to == "finished" || to == "failed" || to == "canceled"
	case "uploading":
		return to == "finished" || to == "failed" || to == "canceled"
	}
	return false
}

func (fc *fakeConsole) becomeLocked(r *consoleRun, state string) {
	r.state = state
	r.transitions = append(r.transitions, transition{state, time.Now()})
	active := 0
	for _, o := range fc.runs {
		if o.state == "accepted" || o.state == "running" {
			active++
		}
	}
	fc.maxActive = max(fc.maxActive, active)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, jobapi.ErrorResponse{Error: fmt.Sprintf(format, args...)})
}

func (fc *fakeConsole) handler() http.Handler {
	mux := http.NewServeMux()
	// with checks the client certificate, records the request, applies
	// refuse, and finds the run.
	with := func(h func(w http.ResponseWriter, r *http.Request, run *consoleRun)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, _, err := pki.DeviceFromConn(r.TLS, time.Now()); err != nil {
				writeErr(w, http.StatusUnauthorized, "no client certificate")
				return
			}
			fc.mu.Lock()
			fc.requests = append(fc.requests, r.Method+" "+r.URL.Path)
			refuse := fc.refuse
			fc.mu.Unlock()
			if refuse != nil {
				if code := refuse(r); code != 0 {
					_, _ = io.Copy(io.Discard, r.Body)
					writeErr(w, code, "the console is unwell")
					return
				}
			}
			id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
			fc.mu.Lock()
			run := fc.runs[id]
			fc.mu.Unlock()
			if err != nil || run == nil {
				writeErr(w, http.StatusNotFound, "no job %s for this device", r.PathValue("id"))
				return
			}
			h(w, r, run)
		}
	}
	mux.HandleFunc("POST "+jobapi.ClaimPath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		var req jobapi.ClaimRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Claim) != 32 {
			writeErr(w, http.StatusBadRequest, "bad claim")
			return
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		run.claims = append(run.claims, req.Claim)
		switch {
		case terminal(run.state):
			writeErr(w, http.StatusGone, "the run has ended (%s)", run.state)
		case run.claim == "":
			run.claim = req.Claim
			fc.becomeLocked(run, "accepted")
			if fc.loseClaims > 0 {
				fc.loseClaims--
				writeErr(w, http.StatusServiceUnavailable, "the answer was lost")
				return
			}
			writeJSON(w, http.StatusOK, run.agentJob())
		case run.claim == req.Claim && fc.loseClaims > 0:
			fc.loseClaims--
			writeErr(w, http.StatusServiceUnavailable, "the answer was lost")
		case run.claim != req.Claim:
			writeErr(w, http.StatusConflict, "claimed by another attempt")
		default:
			writeJSON(w, http.StatusOK, run.agentJob())
		}
	}))
	mux.HandleFunc("POST "+jobapi.ProgressPath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		var req jobapi.ProgressRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "bad progress")
			return
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		run.progresses = append(run.progresses, req)
		switch {
		case req.Claim != run.claim:
			writeErr(w, http.StatusConflict, "claimed by another attempt")
			return
		case terminal(run.state):
			writeErr(w, http.StatusGone, "the run has ended (%s: %s)", run.state, run.errText)
			return
		case req.State != "" && req.State != run.state && !canBecome(run.state, req.State):
			writeErr(w, http.StatusUnprocessableEntity, "a %s run cannot become %s", run.state, req.State)
			return
		case req.State != "" && req.State != run.state:
			fc.becomeLocked(run, req.State)
		}
		run.progress = req.Progress
		writeJSON(w, http.StatusOK, run.control())
	}))
	mux.HandleFunc("GET "+jobapi.RunPath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		run.checks++
		writeJSON(w, http.StatusOK, run.control())
	}))
	mux.HandleFunc("POST "+jobapi.FinishPath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		var req jobapi.FinishRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "bad finish")
			return
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		switch {
		case req.Claim != run.claim:
			writeErr(w, http.StatusConflict, "claimed by another attempt")
		case terminal(run.state) && run.state == req.State:
			writeJSON(w, http.StatusOK, run.control())
		case terminal(run.state):
			writeErr(w, http.StatusGone, "the run has ended (%s)", run.state)
		case !canBecome(run.state, req.State):
			writeErr(w, http.StatusUnprocessableEntity, "a %s run cannot become %s", run.state, req.State)
		default:
			run.progress, run.errText, run.delivered = req.Progress, req.Error, req.Result
			run.finishes++
			fc.becomeLocked(run, req.State)
			if fc.loseFinishes > 0 {
				fc.loseFinishes--
				writeErr(w, http.StatusServiceUnavailable, "the answer was lost")
				return
			}
			writeJSON(w, http.StatusOK, run.control())
		}
	}))
	uploadHeaders := func(w http.ResponseWriter, run *consoleRun, code int) {
		if run.result != nil {
			w.Header().Set(jobapi.HeaderOffset, strconv.Itoa(len(run.result)))
			w.Header().Set(jobapi.HeaderComplete, "?1")
		} else {
			w.Header().Set(jobapi.HeaderOffset, strconv.Itoa(len(run.part)))
			w.Header().Set(jobapi.HeaderComplete, "?0")
		}
		w.WriteHeader(code)
	}
	mux.HandleFunc("HEAD "+jobapi.PcapPath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if run.claim == "" {
			writeErr(w, http.StatusConflict, "never accepted")
			return
		}
		if fc.staleHead > 0 && run.result == nil && len(run.part) > 0 {
			fc.staleHead--
			w.Header().Set(jobapi.HeaderOffset, strconv.Itoa(max(0, len(run.part)-4096)))
			w.Header().Set(jobapi.HeaderComplete, "?0")
			w.WriteHeader(http.StatusOK)
			return
		}
		uploadHeaders(w, run, http.StatusOK)
	}))
	mux.HandleFunc("PATCH "+jobapi.PcapPath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		off, err1 := strconv.ParseInt(r.Header.Get(jobapi.HeaderOffset), 10, 64)
		total, err2 := strconv.ParseInt(r.Header.Get(jobapi.HeaderLength), 10, 64)
		sum := r.Header.Get(jobapi.HeaderSHA256)
		if err1 != nil || err2 != nil || len(sum) != 64 || r.Header.Get("Content-Type") != jobapi.UploadContentType {
			writeErr(w, http.StatusBadRequest, "bad upload headers")
			return
		}
		body, err := io.ReadAll(r.Body)
		fc.mu.Lock()
		defer fc.mu.Unlock()
		run.patches = append(run.patches, off)
		switch {
		case err != nil:
			w.Header().Set(jobapi.HeaderOffset, strconv.Itoa(len(run.part)))
			writeErr(w, http.StatusBadRequest, "the upload broke off")
			return
		case run.claim == "":
			writeErr(w, http.StatusConflict, "never accepted")
			return
		case run.result != nil:
			uploadHeaders(w, run, http.StatusNoContent)
			return
		case off != int64(len(run.part)):
			w.Header().Set(jobapi.HeaderOffset, strconv.Itoa(len(run.part)))
			writeErr(w, http.StatusConflict, "resume from %d", len(run.part))
			return
		case off+int64(len(body)) > total:
			writeErr(w, http.StatusBadRequest, "past the length")
			return
		}
		run.part = append(run.part, body...)
		if int64(len(run.part)) == total {
			h := sha256.Sum256(run.part)
			if hex.EncodeToString(h[:]) != sum {
				run.part = nil
				writeErr(w, http.StatusUnprocessableEntity, "SHA-256 mismatch: discarded")
				return
			}
			run.result, run.part = run.part, nil
		}
		if fc.loseAnswer != nil && fc.loseAnswer(r) {
			writeErr(w, http.StatusServiceUnavailable, "the answer was lost")
			return
		}
		uploadHeaders(w, run, http.StatusNoContent)
	}))
	mux.HandleFunc("POST "+jobapi.LivePath, with(func(w http.ResponseWriter, r *http.Request, run *consoleRun) {
		rec := &liveRecord{}
		fc.mu.Lock()
		run.live = append(run.live, rec)
		fc.mu.Unlock()
		_, _ = io.Copy(rec, r.Body)
		rec.mu.Lock()
		rec.ended = true
		rec.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	return mux
}
