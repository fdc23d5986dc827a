package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// Bounds of the agent's job requests.
const (
	// maxRunError bounds the reason of a failed or canceled run.
	maxRunError = 4096
	// uploadIdle is how long an upload's body may send nothing before the
	// console gives up on it (the upload has no deadline as a whole).
	uploadIdle = 30 * time.Second
	// uploadAnswer is the write deadline of an upload's answer.
	uploadAnswer = 30 * time.Second
	// uploadBuffer is the copy buffer of an upload's body.
	uploadBuffer = 256 << 10
)

// agentJob is a device's run of j as the agent sees it.
func agentJob(j store.Job, run store.Run) jobapi.AgentJob {
	ifaces := j.Spec.Interfaces
	if ifaces == nil {
		ifaces = []string{}
	}
	return jobapi.AgentJob{
		ID: j.ID, State: string(run.State), Claim: run.Claim,
		CreatedAt: j.CreatedAt.UTC(), ExpiresAt: j.ExpiresAt.UTC(), CancelRequested: !j.CancelRequestedAt.IsZero(),
		Interfaces: ifaces, Filter: j.Spec.Filter, SnapLen: j.Spec.SnapLen, Duration: jobapi.Duration(j.Spec.Duration),
		MaxPackets: j.Spec.MaxPackets, MaxBytes: j.Spec.MaxBytes, Destination: j.Spec.Destination,
	}
}

// deviceJobs are the device's runs that have not ended, for its long poll.
func (s *Server) deviceJobs(ctx context.Context, device string) ([]jobapi.AgentJob, error) {
	runs, err := s.cfg.Store.DeviceRuns(ctx, device)
	if err != nil {
		return nil, err
	}
	out := make([]jobapi.AgentJob, 0, len(runs))
	for _, dr := range runs {
		out = append(out, agentJob(dr.Job, dr.Run))
	}
	return out, nil
}

// agentJobID reads the job id of an agent URL; on failure it has
// answered 404.
func agentJobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusNotFound, "no job %q: job ids are numbers, as the config's jobs give them", v)
		return 0, false
	}
	return id, true
}

// validClaim reports whether c is a claim token: 16 to 128 hex digits.
func validClaim(c string) bool {
	return len(c) >= 16 && len(c) <= 128 && !strings.ContainsFunc(c, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F')
	})
}

// findRun returns device's run of job id with its job: from the device's
// live runs (one read of the store, the cheap path of the 1 s cancel
// check), else from the job. ErrNotFound when the job has no run of the
// device.
func (s *Server) findRun(ctx context.Context, id int64, device string) (store.Job, store.Run, error) {
	runs, err := s.cfg.Store.DeviceRuns(ctx, device)
	if err != nil {
		return store.Job{}, store.Run{}, err
	}
	for _, dr := range runs {
		if dr.Job.ID == id {
			return dr.Job, dr.Run, nil
		}
	}
	j, err := s.cfg.Store.GetJob(ctx, id)
	if err != nil {
		return j, store.Run{}, err
	}
	i := slices.IndexFunc(j.Runs, func(r store.Run) bool { return r.Device == device })
	if i < 0 {
		return j, store.Run{}, fmt.Errorf("job %d has no run on device %s: %w", id, device, store.ErrNotFound)
	}
	return j, j.Runs[i], nil
}

// runControl is the answer to an agent's progress, finish or cancel
// check of run.
func (s *Server) runControl(j store.Job, run store.Run) jobapi.RunControl {
	return jobapi.RunControl{
		State:           string(run.State),
		CancelRequested: !j.CancelRequestedAt.IsZero(),
		LiveWanted:      !run.State.Terminal() && s.live.wanted(j.ID, run.Device),
	}
}

// runError answers an error of the store about device's run of job id.
func (s *Server) runError(w http.ResponseWriter, r *http.Request, id int64, d device, err error, want store.RunState) {
	state := func() string {
		_, run, err := s.findRun(r.Context(), id, d.ID)
		if err != nil {
			return "ended"
		}
		if run.Error != "" {
			return string(run.State) + ": " + run.Error
		}
		return string(run.State)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no job %d for device %s: drop it", id, d.ID)
	case errors.Is(err, store.ErrClaimed):
		writeError(w, http.StatusConflict, "job %d's run on device %s is not this claim's (another attempt of the agent accepted it, or none did): drop this attempt", id, d.ID)
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusBadRequest, "job %d: %v", id, err)
	case errors.Is(err, store.ErrRunEnded):
		writeError(w, http.StatusGone, "job %d's run on device %s has ended (%s): stop working on it", id, d.ID, state())
	case errors.Is(err, store.ErrBadTransition):
		writeError(w, http.StatusUnprocessableEntity, "job %d's run on device %s is %s: it cannot become %s", id, d.ID, state(), want)
	default:
		s.log.Error("job run", "job", id, "device_id", d.ID, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the console cannot update job %d now: try again", id)
	}
}

// claimRun answers POST jobapi.ClaimPath: the device accepts its queued
// run, atomically; the same claim again gets the run as it is.
func (s *Server) claimRun(w http.ResponseWriter, r *http.Request, d device) {
	id, ok := agentJobID(w, r)
	if !ok {
		return
	}
	var req jobapi.ClaimRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	if !validClaim(req.Claim) {
		writeError(w, http.StatusBadRequest, "claim %q is not a claim token: send a random one of 32 hex digits (128 bits), the same in every retry of one attempt", req.Claim)
		return
	}
	run, err := s.cfg.Store.ClaimRun(r.Context(), id, d.ID, req.Claim, s.now())
	if err != nil {
		s.runError(w, r, id, d, err, store.RunAccepted)
		return
	}
	j, err := s.cfg.Store.GetJob(r.Context(), id)
	if err != nil {
		s.runError(w, r, id, d, err, store.RunAccepted)
		return
	}
	s.log.Info("job run accepted", "job", id, "device_id", d.ID, "claim", req.Claim)
	writeJSON(w, http.StatusOK, agentJob(j, run))
}

// justBecame reports whether run made its transition to st at now (as
// opposed to a repeat).
func justBecame(run store.Run, st store.RunState, now time.Time) bool {
	if len(run.Transitions) == 0 {
		return false
	}
	last := run.Transitions[len(run.Transitions)-1]
	return last.State == st && !last.At.Before(now.Add(-time.Millisecond))
}

// runProgress answers POST jobapi.ProgressPath: the run's progress, and
// its moves to running and uploading.
func (s *Server) runProgress(w http.ResponseWriter, r *http.Request, d device) {
	id, ok := agentJobID(w, r)
	if !ok {
		return
	}
	var req jobapi.ProgressRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	st := store.RunState(req.State)
	if st != "" && st != store.RunRunning && st != store.RunUploading {
		writeError(w, http.StatusBadRequest, `state %q: progress takes "" (no change), "running" or "uploading"; end a run with POST %s`, req.State, jobapi.Path(jobapi.FinishPath, id))
		return
	}
	if !validClaim(req.Claim) {
		writeError(w, http.StatusBadRequest, "claim %q is not a claim token: send the one the run was claimed with", req.Claim)
		return
	}
	now := s.now()
	run, err := s.cfg.Store.UpdateRun(r.Context(), id, d.ID, req.Claim, store.RunUpdate{
		State: st, Packets: req.Packets, Bytes: req.Bytes, Drops: req.Drops, Size: req.Size,
	}, now)
	if err == nil && run.State.Terminal() {
		err = fmt.Errorf("progress of a run that is %s: %w", run.State, store.ErrRunEnded)
	}
	if err != nil {
		s.runError(w, r, id, d, err, st)
		return
	}
	if st != "" && justBecame(run, st, now) {
		s.log.Info("job run "+string(st), "job", id, "device_id", d.ID, "packets", run.Packets, "bytes", run.Bytes, "drops", run.Drops, "size", run.Size)
	}
	j, run, err := s.findRun(r.Context(), id, d.ID)
	if err != nil {
		s.runError(w, r, id, d, err, st)
		return
	}
	writeJSON(w, http.StatusOK, s.runControl(j, run))
}

// runCheck answers GET jobapi.RunPath, the agent's cancel check.
func (s *Server) runCheck(w http.ResponseWriter, r *http.Request, d device) {
	id, ok := agentJobID(w, r)
	if !ok {
		return
	}
	j, run, err := s.findRun(r.Context(), id, d.ID)
	if err != nil {
		s.runError(w, r, id, d, err, "")
		return
	}
	writeJSON(w, http.StatusOK, s.runControl(j, run))
}

// finishRun answers POST jobapi.FinishPath: the run ends, once; the same
// end again is answered as the first.
func (s *Server) finishRun(w http.ResponseWriter, r *http.Request, d device) {
	id, ok := agentJobID(w, r)
	if !ok {
		return
	}
	var req jobapi.FinishRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	st := store.RunState(req.State)
	if st != store.RunFinished && st != store.RunFailed && st != store.RunCanceled {
		writeError(w, http.StatusBadRequest, `state %q: a run finishes "finished", "failed" or "canceled"`, req.State)
		return
	}
	if !validClaim(req.Claim) {
		writeError(w, http.StatusBadRequest, "claim %q is not a claim token: send the one the run was claimed with", req.Claim)
		return
	}
	if len(req.Error) > maxRunError {
		writeError(w, http.StatusBadRequest, "error longer than %d bytes: say why in a sentence", maxRunError)
		return
	}
	now := s.now()
	if req.Result != nil && !s.attachDelivered(w, r, id, d, req) {
		return
	}
	run, err := s.cfg.Store.UpdateRun(r.Context(), id, d.ID, req.Claim, store.RunUpdate{
		State: st, Packets: req.Packets, Bytes: req.Bytes, Drops: req.Drops, Size: req.Size, Error: req.Error,
	}, now)
	if err != nil {
		s.runError(w, r, id, d, err, st)
		return
	}
	s.live.end(id, d.ID)
	if justBecame(run, st, now) {
		s.log.Info("job run ended", "job", id, "device_id", d.ID, "state", st, "error", run.Error,
			"packets", run.Packets, "bytes", run.Bytes, "drops", run.Drops, "size", run.Size)
	}
	j, run, err := s.findRun(r.Context(), id, d.ID)
	if err != nil {
		s.runError(w, r, id, d, err, st)
		return
	}
	writeJSON(w, http.StatusOK, s.runControl(j, run))
}

// attachDelivered records the result an agent delivered to the job's S3
// destination itself, before the run's end (a run the console already
// ended takes it too). It answers and returns false when it refuses.
func (s *Server) attachDelivered(w http.ResponseWriter, r *http.Request, id int64, d device, req jobapi.FinishRequest) bool {
	j, run, err := s.findRun(r.Context(), id, d.ID)
	if err != nil {
		s.runError(w, r, id, d, err, store.RunState(req.State))
		return false
	}
	res := req.Result
	switch {
	case run.Claim != req.Claim, !run.State.Terminal() && run.State != store.RunState(req.State) && !run.State.CanBecome(store.RunState(req.State)):
		return true // UpdateRun refuses it (409, 422), and nothing is attached
	case j.Spec.Destination == jobapi.DestinationConsole:
		writeError(w, http.StatusConflict, "job %d's result goes to the console: upload it to %s, not as a location", id, jobapi.Path(jobapi.PcapPath, id))
		return false
	case !strings.HasPrefix(res.Location, j.Spec.Destination) || len(res.Location) == len(j.Spec.Destination):
		writeError(w, http.StatusBadRequest, "result location %q is not an object under the job's destination %s", res.Location, j.Spec.Destination)
		return false
	case res.Size < 0 || uint64(res.Size) > j.Spec.MaxBytes+jobapi.UploadSlack:
		writeError(w, http.StatusRequestEntityTooLarge, "result of %d bytes is above job %d's max_bytes %d", res.Size, id, j.Spec.MaxBytes)
		return false
	case !validSHA256(res.SHA256):
		writeError(w, http.StatusBadRequest, "result sha256 %q is not 64 hex digits", res.SHA256)
		return false
	}
	_, err = s.cfg.Store.AttachResult(r.Context(), id, d.ID, store.RunResult{
		Location: res.Location, Size: res.Size, SHA256: strings.ToLower(res.SHA256), StoredAt: s.now(),
	})
	switch {
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, "job %d's run already has another result", id)
		return false
	case err != nil:
		s.runError(w, r, id, d, err, store.RunState(req.State))
		return false
	}
	s.log.Info("job result delivered to object storage", "job", id, "device_id", d.ID, "location", res.Location, "size", res.Size)
	return true
}

// validSHA256 reports whether s is a hex SHA-256.
func validSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// runKey names one device's run of a job.
type runKey struct {
	job    int64
	device string
}

// uploadLocks serialize the uploads of each run (a retry that overtakes
// a PATCH still being read waits for it). The zero value is ready.
type uploadLocks struct {
	mu sync.Mutex
	m  map[runKey]*uploadLock
}

type uploadLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks k's upload and returns the unlock.
func (u *uploadLocks) lock(k runKey) func() {
	u.mu.Lock()
	if u.m == nil {
		u.m = map[runKey]*uploadLock{}
	}
	l := u.m[k]
	if l == nil {
		l = &uploadLock{}
		u.m[k] = l
	}
	l.refs++
	u.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		u.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(u.m, k)
		}
		u.mu.Unlock()
	}
}

// uploadRun returns the run an upload is for, checked: the device's,
// accepted once, with the console as its destination. On failure it has
// answered.
func (s *Server) uploadRun(w http.ResponseWriter, r *http.Request, id int64, d device) (store.Job, store.Run, bool) {
	j, run, err := s.findRun(r.Context(), id, d.ID)
	switch {
	case err != nil:
		s.runError(w, r, id, d, err, "")
		return j, run, false
	case j.Spec.Destination != jobapi.DestinationConsole:
		writeError(w, http.StatusConflict, "job %d's result goes to %s: upload it there (the console takes results of destination %q only)", id, j.Spec.Destination, jobapi.DestinationConsole)
		return j, run, false
	case run.Claim == "":
		writeError(w, http.StatusConflict, "job %d's run on device %s was never accepted (it is %s): it has no result to upload", id, d.ID, run.State)
		return j, run, false
	}
	return j, run, true
}

// heldUpload is how many bytes of the run's upload the console holds:
// the size of its .part file. A complete file whose result the store did
// not take (the console stopped in between) becomes the .part again, to
// be completed by the next PATCH.
func (s *Server) heldUpload(id int64, device string) (int64, error) {
	final := s.resultPath(id, device)
	part := final + ".part"
	fi, err := os.Stat(part)
	if errors.Is(err, os.ErrNotExist) {
		if _, ferr := os.Stat(final); ferr == nil {
			if rerr := os.Rename(final, part); rerr != nil {
				return 0, fmt.Errorf("recover upload: %w", rerr)
			}
			fi, err = os.Stat(part)
		}
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("upload: %w", err)
	}
	return fi.Size(), nil
}

// writeUploaded answers an upload with the bytes held and whether the
// result is stored.
func writeUploaded(w http.ResponseWriter, code int, held int64, complete bool) {
	h := w.Header()
	h.Set(jobapi.HeaderOffset, strconv.FormatInt(held, 10))
	if complete {
		h.Set(jobapi.HeaderComplete, "?1")
	} else {
		h.Set(jobapi.HeaderComplete, "?0")
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
}

// uploadStatus answers HEAD jobapi.PcapPath: where the agent resumes.
func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, d device) {
	id, ok := agentJobID(w, r)
	if !ok {
		return
	}
	if _, _, ok := s.uploadRun(w, r, id, d); !ok {
		return
	}
	defer s.uploads.lock(runKey{id, d.ID})()
	_, run, ok := s.uploadRun(w, r, id, d) // as the last PATCH left it
	if !ok {
		return
	}
	if run.Result != nil {
		writeUploaded(w, http.StatusOK, run.Result.Size, true)
		return
	}
	held, err := s.heldUpload(id, d.ID)
	if err != nil {
		s.uploadFailed(w, id, d, err, -1)
		return
	}
	writeUploaded(w, http.StatusOK, held, false)
}

// uploadFailed answers a failure of the console's disk or store during
// an upload; held, when not negative, is where the agent resumes.
func (s *Server) uploadFailed(w http.ResponseWriter, id int64, d device, err error, held int64) {
	s.log.Error("job upload", "job", id, "device_id", d.ID, "err", err)
	if held >= 0 {
		w.Header().Set(jobapi.HeaderOffset, strconv.FormatInt(held, 10))
	}
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "the console cannot store job %d's upload now: try again", id)
}

// idleReader reads an upload's body with a read deadline that moves with
// every read: the body may take as long as it needs, but not stall.
type idleReader struct {
	r   io.Reader
	rc  *http.ResponseController
	err error // the body's error, not io.EOF
}

func (ir *idleReader) Read(p []byte) (int, error) {
	_ = ir.rc.SetReadDeadline(time.Now().Add(uploadIdle))
	n, err := ir.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		ir.err = err
	}
	return n, err
}

// uploadHeaders reads a PATCH's upload headers; on a bad one it has
// answered 400 or 415.
func uploadHeaders(w http.ResponseWriter, r *http.Request) (offset, total int64, sum string, ok bool) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != jobapi.UploadContentType {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type %q: send the pcap's bytes as %s", r.Header.Get("Content-Type"), jobapi.UploadContentType)
		return 0, 0, "", false
	}
	v := r.Header.Get(jobapi.HeaderOffset)
	offset, err = strconv.ParseInt(v, 10, 64)
	if err != nil || offset < 0 {
		writeError(w, http.StatusBadRequest, "%s %q: give where this body starts in the file (0 or more; HEAD says where to resume)", jobapi.HeaderOffset, v)
		return 0, 0, "", false
	}
	v = r.Header.Get(jobapi.HeaderLength)
	total, err = strconv.ParseInt(v, 10, 64)
	if err != nil || total < 1 {
		writeError(w, http.StatusBadRequest, "%s %q: give the whole file's size in bytes", jobapi.HeaderLength, v)
		return 0, 0, "", false
	}
	sum = strings.ToLower(r.Header.Get(jobapi.HeaderSHA256))
	if !validSHA256(sum) {
		writeError(w, http.StatusBadRequest, "%s %q: give the whole file's SHA-256 in hex (64 digits)", jobapi.HeaderSHA256, r.Header.Get(jobapi.HeaderSHA256))
		return 0, 0, "", false
	}
	switch {
	case offset > total:
		writeError(w, http.StatusBadRequest, "%s %d is past %s %d: resume within the file", jobapi.HeaderOffset, offset, jobapi.HeaderLength, total)
		return 0, 0, "", false
	case r.ContentLength > total-offset:
		writeError(w, http.StatusBadRequest, "the body (%d bytes from %d) runs past %s %d: send the bytes from %s to the end of the file", r.ContentLength, offset, jobapi.HeaderLength, total, jobapi.HeaderOffset)
		return 0, 0, "", false
	}
	return offset, total, sum, true
}

// uploadPcap answers PATCH jobapi.PcapPath: the body is appended at
// Upload-Offset; when the file is whole, its SHA-256 is checked and it
// becomes the run's result.
func (s *Server) uploadPcap(w http.ResponseWriter, r *http.Request, d device) {
	id, ok := agentJobID(w, r)
	if !ok {
		return
	}
	j, _, ok := s.uploadRun(w, r, id, d)
	if !ok {
		return
	}
	offset, total, sum, ok := uploadHeaders(w, r)
	if !ok {
		return
	}
	maxBytes := j.Spec.MaxBytes
	if maxBytes == 0 {
		maxBytes = s.cfg.JobPolicy.MaxBytes
	}
	if uint64(total) > maxBytes+jobapi.UploadSlack {
		writeError(w, http.StatusRequestEntityTooLarge, "%s %d is above job %d's max_bytes %d plus %d bytes of slack: the console keeps no result that large", jobapi.HeaderLength, total, id, maxBytes, jobapi.UploadSlack)
		return
	}

	defer s.uploads.lock(runKey{id, d.ID})()
	_, run, ok := s.uploadRun(w, r, id, d) // as the PATCH before this one left it
	if !ok {
		return
	}
	if res := run.Result; res != nil {
		if res.SHA256 != sum {
			writeError(w, http.StatusConflict, "job %d's result from device %s is stored already, with SHA-256 %s: it takes no other file", id, d.ID, res.SHA256)
			return
		}
		writeUploaded(w, http.StatusNoContent, res.Size, true)
		return
	}
	held, err := s.heldUpload(id, d.ID)
	if err != nil {
		s.uploadFailed(w, id, d, err, -1)
		return
	}
	final := s.resultPath(id, d.ID)
	part := final + ".part"
	if held > total { // a partial upload of another, longer file
		if err := os.Remove(part); err != nil {
			s.uploadFailed(w, id, d, err, -1)
			return
		}
		s.log.Warn("job upload discarded: the file changed", "job", id, "device_id", d.ID, "held", held, "upload_length", total)
		held = 0
	}
	if offset != held {
		w.Header().Set(jobapi.HeaderOffset, strconv.FormatInt(held, 10))
		writeError(w, http.StatusConflict, "%s %d is not where the console's copy ends (%d bytes): resume from %d", jobapi.HeaderOffset, offset, held, held)
		return
	}
	// A PATCH that brings the rest of the file hashes it as it writes
	// (after the part held); the console reads back only what it held.
	var h hash.Hash
	if held < total && r.ContentLength == total-held {
		if h, err = prefixSHA256(part, held); err != nil {
			s.uploadFailed(w, id, d, err, held)
			return
		}
	}
	if held < total {
		n, msg, err := s.appendUpload(w, r, part, held, total-held, h)
		held += n
		switch {
		case err != nil:
			s.uploadFailed(w, id, d, err, held)
			return
		case msg != "":
			w.Header().Set(jobapi.HeaderOffset, strconv.FormatInt(held, 10))
			writeError(w, http.StatusBadRequest, "%s", msg)
			return
		case held < total:
			writeUploaded(w, http.StatusNoContent, held, false)
			return
		}
	}

	var got string
	if h != nil {
		got = hex.EncodeToString(h.Sum(nil))
	} else if got, err = fileSHA256(part); err != nil {
		s.uploadFailed(w, id, d, err, held)
		return
	}
	if got != sum {
		if err := os.Remove(part); err != nil {
			s.uploadFailed(w, id, d, err, held)
			return
		}
		s.log.Warn("job upload discarded: SHA-256 mismatch", "job", id, "device_id", d.ID, "sha256", got, "want", sum)
		writeError(w, http.StatusUnprocessableEntity, "the upload's SHA-256 is %s, not the %s of %s: the console discarded it; upload the file again from offset 0", got, jobapi.HeaderSHA256, sum)
		return
	}
	if err := os.Rename(part, final); err != nil {
		s.uploadFailed(w, id, d, err, held)
		return
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		s.uploadFailed(w, id, d, err, held)
		return
	}
	_, err = s.cfg.Store.AttachResult(r.Context(), id, d.ID, store.RunResult{
		Location: jobapi.DestinationConsole, Size: total, SHA256: sum, StoredAt: s.now(),
	})
	if err != nil {
		// The whole file waits as the .part for the next PATCH (from
		// offset total) to store it.
		if rerr := os.Rename(final, part); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if errors.Is(err, store.ErrExists) {
			writeError(w, http.StatusConflict, "job %d's result from device %s is stored already, with another SHA-256: it takes no other file", id, d.ID)
			return
		}
		s.uploadFailed(w, id, d, err, held)
		return
	}
	s.log.Info("job result stored", "job", id, "device_id", d.ID, "size", total, "sha256", sum)
	writeUploaded(w, http.StatusNoContent, total, true)
}

// appendUpload writes the body of r at offset held of part, at most max
// bytes, fsync'd, and to h too when not nil. It returns the bytes
// written, and a message for the agent when the body broke off or ran
// past the file (the bytes past the file are not kept), or an error of
// the disk.
func (s *Server) appendUpload(w http.ResponseWriter, r *http.Request, part string, held, max int64, h hash.Hash) (int64, string, error) {
	if err := os.MkdirAll(filepath.Dir(part), 0o700); err != nil {
		return 0, "", fmt.Errorf("upload: %w", err)
	}
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(held, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("upload: %w", err)
	}
	// The body takes as long as it takes (a large pcap on a slow link):
	// no deadline for it as a whole, only for a stall, and the answer
	// gets its own.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	defer func() { _ = rc.SetWriteDeadline(time.Now().Add(uploadAnswer)) }()
	body := &idleReader{r: r.Body, rc: rc}
	var dst io.Writer = f
	if h != nil {
		dst = io.MultiWriter(f, h)
	}
	n, copyErr := io.CopyBuffer(dst, io.LimitReader(body, max), make([]byte, uploadBuffer))
	var msg string
	if copyErr == nil && n == max {
		var one [1]byte
		if k, _ := body.Read(one[:]); k > 0 {
			// Keep nothing of a body that does not fit the file.
			if err := f.Truncate(held); err != nil {
				return 0, "", fmt.Errorf("upload: %w", err)
			}
			n, msg = 0, fmt.Sprintf("the body runs past %s %d: send the bytes from %s to the end of the file", jobapi.HeaderLength, held+max, jobapi.HeaderOffset)
		}
	}
	if err := f.Sync(); err != nil {
		return n, "", fmt.Errorf("upload: %w", err)
	}
	switch {
	case copyErr != nil && body.err == nil: // the disk
		return n, "", fmt.Errorf("upload: %w", copyErr)
	case copyErr != nil:
		s.log.Info("job upload broke off", "path", part, "held", held+n, "err", copyErr)
		msg = fmt.Sprintf("the upload broke off at byte %d (%v): resume from %s", held+n, copyErr, jobapi.HeaderOffset)
	}
	return n, msg, f.Close()
}

// fileSHA256 is the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash upload: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash upload: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// prefixSHA256 is a SHA-256 that has hashed the first n bytes of the
// file at path (none when n is 0).
func prefixSHA256(path string, n int64) (hash.Hash, error) {
	h := sha256.New()
	if n == 0 {
		return h, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hash upload: %w", err)
	}
	defer f.Close()
	if _, err := io.CopyN(h, f, n); err != nil {
		return nil, fmt.Errorf("hash upload: %w", err)
	}
	return h, nil
}

// syncDir fsyncs a directory, so that a rename in it lasts.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
