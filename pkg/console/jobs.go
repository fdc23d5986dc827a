package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// Paging of GET /api/v1/jobs.
const (
	defaultJobList = 100
	maxJobList     = 1000
)

// jobsDir is the directory of the jobs' results in the data directory:
// jobsDir/<job id>/<device id>.pcapng.
const jobsDir = "jobs"

// jobRequest is the body of POST /api/v1/jobs. Durations are Go duration
// strings ("60s"); a number is nanoseconds.
type jobRequest struct {
	Devices     []string        `json:"devices"`
	Interfaces  []string        `json:"interfaces"`
	Filter      string          `json:"filter"`
	SnapLen     uint32          `json:"snaplen"`
	Duration    json.RawMessage `json:"duration"`
	MaxPackets  uint64          `json:"max_packets"`
	MaxBytes    uint64          `json:"max_bytes"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	Destination string          `json:"destination"`
}

// JobView is a job as the admin API shows it.
type JobView struct {
	ID                int64           `json:"id"`
	CreatedAt         time.Time       `json:"created_at"`
	ExpiresAt         time.Time       `json:"expires_at"`
	CancelRequestedAt *time.Time      `json:"cancel_requested_at"`
	Devices           []string        `json:"devices"`
	Interfaces        []string        `json:"interfaces"`
	Filter            string          `json:"filter"`
	SnapLen           uint32          `json:"snaplen"`
	Duration          jobapi.Duration `json:"duration"`
	MaxPackets        uint64          `json:"max_packets"`
	MaxBytes          uint64          `json:"max_bytes"`
	Destination       string          `json:"destination"`
	// State is "active" while a run has not ended, else "done".
	State string    `json:"state"`
	Runs  []RunView `json:"runs"`
}

// The states of a JobView.
const (
	JobActive = "active"
	JobDone   = "done"
)

// RunView is one device's run of a job as the admin API shows it.
type RunView struct {
	Device      string             `json:"device"`
	Hostname    string             `json:"hostname"`
	State       store.RunState     `json:"state"`
	Packets     uint64             `json:"packets"`
	Bytes       uint64             `json:"bytes"`
	Drops       uint64             `json:"drops"`
	Size        uint64             `json:"size"`
	Error       string             `json:"error"`
	UpdatedAt   time.Time          `json:"updated_at"`
	Transitions []store.Transition `json:"transitions"`
	Result      *ResultView        `json:"result"`
	// Live is the path of the run's live stream.
	Live string `json:"live"`
}

// ResultView is where a run's pcap is; Download is its path on the
// admin API when the console holds it.
type ResultView struct {
	Location string `json:"location"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Download string `json:"download,omitempty"`
	// Deleted, for a result the console no longer holds (its retention
	// or a space bound deleted it), says why; Download is then empty.
	Deleted string `json:"deleted,omitempty"`
}

// jobPath is the admin API path of job id, plus rest.
func jobPath(id int64, rest string) string { return "/api/v1/jobs/" + itoa(id) + rest }

// jobView builds a job's view; hostnames maps device ids to hostnames.
func jobView(j store.Job, hostnames map[string]string) JobView {
	v := JobView{
		ID: j.ID, CreatedAt: j.CreatedAt.UTC(), ExpiresAt: j.ExpiresAt.UTC(), CancelRequestedAt: timePtr(j.CancelRequestedAt),
		Devices: []string{}, Interfaces: j.Spec.Interfaces, Filter: j.Spec.Filter, SnapLen: j.Spec.SnapLen,
		Duration: jobapi.Duration(j.Spec.Duration), MaxPackets: j.Spec.MaxPackets, MaxBytes: j.Spec.MaxBytes,
		Destination: j.Spec.Destination, State: JobDone, Runs: []RunView{},
	}
	if v.Interfaces == nil {
		v.Interfaces = []string{}
	}
	for _, r := range j.Runs {
		v.Devices = append(v.Devices, r.Device)
		if !r.State.Terminal() {
			v.State = JobActive
		}
		rv := RunView{
			Device: r.Device, Hostname: hostnames[r.Device], State: r.State,
			Packets: r.Packets, Bytes: r.Bytes, Drops: r.Drops, Size: r.Size, Error: r.Error,
			UpdatedAt: r.UpdatedAt.UTC(), Transitions: r.Transitions,
			Live: jobPath(j.ID, "/runs/"+r.Device+"/live"),
		}
		if rv.Transitions == nil {
			rv.Transitions = []store.Transition{}
		}
		for i := range rv.Transitions {
			rv.Transitions[i].At = rv.Transitions[i].At.UTC()
		}
		if res := r.Result; res != nil {
			rv.Result = &ResultView{Location: res.Location, Size: res.Size, SHA256: res.SHA256}
			if res.Location == jobapi.DestinationConsole {
				rv.Result.Download = jobPath(j.ID, "/runs/"+r.Device+"/pcap")
			}
		}
		v.Runs = append(v.Runs, rv)
	}
	return v
}

// hostnames maps every device's id to its hostname, for job views.
func (s *Server) hostnames(r *http.Request) (map[string]string, error) {
	devs, err := s.cfg.Store.ListDevices(r.Context(), s.now())
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(devs))
	for _, d := range devs {
		m[d.ID] = d.Hostname
	}
	return m, nil
}

// writeJob answers code with the view of j.
func (s *Server) writeJob(w http.ResponseWriter, r *http.Request, code int, j store.Job) {
	names, err := s.hostnames(r)
	if err != nil {
		s.storeError(w, "job "+itoa(j.ID), err)
		return
	}
	writeJSON(w, code, s.withDeleted(j, jobView(j, names)))
}

// withDeleted marks in v the results of j that the console stored and
// deleted since (resultGone).
func (s *Server) withDeleted(j store.Job, v JobView) JobView {
	for i := range v.Runs {
		rv := &v.Runs[i]
		if rv.Result == nil || rv.Result.Location != jobapi.DestinationConsole {
			continue
		}
		if why := s.resultGone(j, rv.Device); why != "" {
			rv.Result.Deleted, rv.Result.Download = why, ""
		}
	}
	return v
}

// resultGone says why the console no longer has the pcap of device's run
// of j: deleted for space (its tombstone) or past --job-retention. It is
// "" while the file is there, or when it went some other way.
func (s *Server) resultGone(j store.Job, device string) string {
	path := s.resultPath(j.ID, device)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if why := spaceReason(filepath.Dir(path), j.ID, device); why != "" {
		return why
	}
	if ended, done := jobEnded(j); done && s.cfg.JobPolicy.Retention > 0 && ended.Before(s.now().Add(-s.cfg.JobPolicy.Retention)) {
		return s.cfg.JobPolicy.retentionReason(j.ID, device)
	}
	return ""
}

// parseJobDuration reads a duration field of a job request: a Go
// duration string or nanoseconds; absent, null or zero is 0.
func parseJobDuration(name string, raw json.RawMessage) (time.Duration, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, ""
	}
	var d time.Duration
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if strings.TrimSpace(str) == "" {
			return 0, ""
		}
		v, err := time.ParseDuration(strings.TrimSpace(str))
		if err != nil {
			return 0, fmt.Sprintf("%s %q is not a duration: give one such as 60s or 5m", name, str)
		}
		d = v
	} else if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		d = time.Duration(n)
	} else {
		return 0, fmt.Sprintf("%s %s is not a duration: give one such as \"60s\" or \"5m\"", name, raw)
	}
	if d < 0 {
		return 0, fmt.Sprintf("%s %s is negative: give a positive duration such as 60s", name, fmtDuration(d))
	}
	return d, ""
}

// checkJobCapture checks a job's interfaces, filter and snaplen as the
// agent checks a standing capture (checkCaptures: the agent's config
// parser, the same filter compiler): one capture per interface, the
// first with the filter. The message names the request's field.
func checkJobCapture(ifaces []string, filter string, snaplen uint32) string {
	caps := make([]store.Capture, len(ifaces))
	for i, name := range ifaces {
		caps[i] = store.Capture{Name: "job-" + strconv.Itoa(i), Interface: name, Output: store.Output{Dir: "/job/" + strconv.Itoa(i)}}
	}
	caps[0].Filter, caps[0].SnapLen = filter, snaplen
	msgs := checkCaptures(caps)
	if len(msgs) == 0 {
		return ""
	}
	msg := msgs[0]
	if rest, ok := strings.CutPrefix(msg, "captures[0].filter: "); ok {
		return "filter: " + rest
	}
	if rest, ok := strings.CutPrefix(msg, "captures[0].snaplen: "); ok {
		return "snaplen: " + rest
	}
	for i := range ifaces {
		if rest, ok := strings.CutPrefix(msg, "captures["+strconv.Itoa(i)+"].interface: "); ok {
			return "interfaces[" + strconv.Itoa(i) + "]: " + rest
		}
	}
	return msg
}

// parseDestination checks a job's destination: "console" (the default)
// or an S3 URL, which it returns as s3://bucket/prefix/.
func parseDestination(dest string) (string, string) {
	switch {
	case dest == "" || dest == jobapi.DestinationConsole:
		return jobapi.DestinationConsole, ""
	case strings.HasPrefix(dest, "s3://"):
		c, err := export.ParseURL(dest)
		if err != nil {
			return "", fmt.Sprintf("destination: %v", err)
		}
		return c.Destination(), ""
	}
	return "", fmt.Sprintf(`destination %q: give "console" (the default) or an S3 URL such as s3://bucket/prefix/`, dest)
}

// checkJobRequest checks a job request against the policy and the store's
// devices and returns the job to create; on a problem it returns the
// message of a 400 (or an error of the store).
func (s *Server) checkJobRequest(r *http.Request, req jobRequest) (store.Job, string, error) {
	var j store.Job
	if len(req.Devices) == 0 {
		return j, `no devices: give the ids of the devices to capture on, as "devices": ["ID"] (GET /api/v1/devices lists them)`, nil
	}
	if len(req.Interfaces) == 0 {
		return j, `no interfaces: give the interfaces to capture on each device, as "interfaces": ["eth1"]`, nil
	}
	for i, dev := range req.Devices {
		if slices.Contains(req.Devices[:i], dev) {
			return j, fmt.Sprintf("device %s is listed twice: give each device once", dev), nil
		}
	}
	for i, name := range req.Interfaces {
		if slices.Contains(req.Interfaces[:i], name) {
			return j, fmt.Sprintf("interface %s is listed twice: give each interface once", name), nil
		}
	}
	if msg := checkJobCapture(req.Interfaces, req.Filter, req.SnapLen); msg != "" {
		return j, msg, nil
	}
	var lim jobLimits
	var msg string
	if lim.Duration, msg = parseJobDuration("duration", req.Duration); msg != "" {
		return j, msg, nil
	}
	if lim.ExpiresIn, msg = parseJobDuration("expires_in", req.ExpiresIn); msg != "" {
		return j, msg, nil
	}
	lim.MaxPackets, lim.MaxBytes = req.MaxPackets, req.MaxBytes
	if lim, msg = s.cfg.JobPolicy.apply(lim); msg != "" {
		return j, msg, nil
	}
	dest, msg := parseDestination(req.Destination)
	if msg != "" {
		return j, msg, nil
	}
	now := s.now()
	for _, id := range req.Devices {
		if msg, err := s.checkJobDevice(r, id, req.Interfaces, now); msg != "" || err != nil {
			return j, msg, err
		}
	}
	snaplen := req.SnapLen
	if snaplen == 0 {
		snaplen = DefaultJobSnapLen
	}
	j = store.Job{
		CreatedAt: now, ExpiresAt: now.Add(lim.ExpiresIn),
		Spec: store.JobSpec{
			Interfaces: req.Interfaces, Filter: req.Filter, SnapLen: snaplen,
			Duration: lim.Duration, MaxPackets: lim.MaxPackets, MaxBytes: lim.MaxBytes, Destination: dest,
		},
	}
	return j, "", nil
}

// checkJobDevice checks that device id may run a job on ifaces: it is
// enrolled, not revoked, and reports the interfaces (when it reported
// any).
func (s *Server) checkJobDevice(r *http.Request, id string, ifaces []string, now time.Time) (string, error) {
	notEnrolled := fmt.Sprintf("device %s is not enrolled: GET /api/v1/devices lists them", id)
	if !pki.ValidDeviceID(id) {
		return notEnrolled, nil
	}
	d, err := s.cfg.Store.GetDevice(r.Context(), id, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notEnrolled, nil
	case err != nil:
		return "", err
	case !d.RevokedAt.IsZero():
		return fmt.Sprintf("device %s (%s) is revoked: it runs no jobs; enroll it again to capture there", id, d.Hostname), nil
	}
	if len(d.Interfaces) == 0 {
		return "", nil // it reported none yet: the agent will say
	}
	for _, name := range ifaces {
		if !slices.Contains(d.Interfaces, name) {
			return fmt.Sprintf("device %s (%s) does not report interface %s: it has %s", id, d.Hostname, name, strings.Join(d.Interfaces, ", ")), nil
		}
	}
	return "", nil
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	var req jobRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	j, msg, err := s.checkJobRequest(r, req)
	switch {
	case err != nil:
		s.storeError(w, "create job", err)
		return
	case msg != "":
		writeError(w, http.StatusBadRequest, "%s", msg)
		return
	}
	j, err = s.cfg.Store.CreateJob(r.Context(), j, req.Devices)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrInvalid):
		// A device revoked or removed since it was checked.
		writeError(w, http.StatusBadRequest, "%v: GET /api/v1/devices lists the devices", err)
		return
	case err != nil:
		s.storeError(w, "create job", err)
		return
	}
	s.log.Info("job created", "job", j.ID, "devices", req.Devices, "interfaces", j.Spec.Interfaces, "filter", j.Spec.Filter,
		"duration", j.Spec.Duration, "max_packets", j.Spec.MaxPackets, "max_bytes", j.Spec.MaxBytes,
		"expires_at", j.ExpiresAt, "destination", j.Spec.Destination)
	w.Header().Set("Location", jobPath(j.ID, ""))
	s.writeJob(w, r, http.StatusCreated, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := store.ListJobsOptions{Limit: defaultJobList}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxJobList {
			writeError(w, http.StatusBadRequest, "limit=%q: give a number of jobs from 1 to %d", v, maxJobList)
			return
		}
		opts.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "before=%q: give a job id (1 or more); the list holds the jobs below it", v)
			return
		}
		opts.Before = n
	}
	jobs, err := s.cfg.Store.ListJobs(r.Context(), opts)
	if err != nil {
		s.storeError(w, "list jobs", err)
		return
	}
	names, err := s.hostnames(r)
	if err != nil {
		s.storeError(w, "list jobs", err)
		return
	}
	out := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, s.withDeleted(j, jobView(j, names)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

// jobID reads the job id of the URL; on failure it has answered 404.
func jobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusNotFound, "no job %q: job ids are numbers (GET /api/v1/jobs lists the jobs)", v)
		return 0, false
	}
	return id, true
}

// lookupJob returns the job the URL names; on failure it has answered.
func (s *Server) lookupJob(w http.ResponseWriter, r *http.Request) (store.Job, bool) {
	id, ok := jobID(w, r)
	if !ok {
		return store.Job{}, false
	}
	j, err := s.cfg.Store.GetJob(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no job %d: GET /api/v1/jobs lists the jobs", id)
		return j, false
	case err != nil:
		s.storeError(w, "job "+itoa(id), err)
		return j, false
	}
	return j, true
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	s.writeJob(w, r, http.StatusOK, j)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	j, err := s.cfg.Store.CancelJob(r.Context(), id, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no job %d: GET /api/v1/jobs lists the jobs", id)
		return
	case errors.Is(err, store.ErrJobEnded):
		writeError(w, http.StatusConflict, "job %d has ended: nothing to cancel", id)
		return
	case err != nil:
		s.storeError(w, "cancel job "+itoa(id), err)
		return
	}
	var ended, live []string
	for _, run := range j.Runs {
		if run.State.Terminal() {
			ended = append(ended, run.Device)
			s.live.end(j.ID, run.Device) // queued runs canceled now; no-op for the others
		} else {
			live = append(live, run.Device)
		}
	}
	s.log.Info("job cancel requested", "job", j.ID, "runs_ended", ended, "runs_stopping", live)
	s.writeJob(w, r, http.StatusOK, j)
}

// resultPath is where the console keeps the pcap of device's run of job
// id.
func (s *Server) resultPath(id int64, device string) string {
	return filepath.Join(s.cfg.DataDir, jobsDir, itoa(id), device+".pcapng")
}

// downloadName is the file name a run's pcap downloads as:
// job-ID-HOSTNAME.pcapng, with the hostname reduced to [A-Za-z0-9._-]
// (the device id when it has none).
func downloadName(id int64, hostname, device string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, hostname)
	if strings.Trim(name, "._") == "" {
		name = device
	}
	return "job-" + itoa(id) + "-" + name + ".pcapng"
}

func (s *Server) downloadPcap(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	dev := r.PathValue("device")
	i := slices.IndexFunc(j.Runs, func(run store.Run) bool { return run.Device == dev })
	if i < 0 {
		writeError(w, http.StatusNotFound, "job %d has no run on device %q: its runs are on %s", j.ID, dev, strings.Join(jobView(j, nil).Devices, ", "))
		return
	}
	run := j.Runs[i]
	switch {
	case run.Result == nil && run.State.Terminal() && run.Claim == "":
		writeError(w, http.StatusConflict, "run is %s: the device never accepted it, so it has no pcap", run.State)
		return
	case run.Result == nil:
		writeError(w, http.StatusConflict, "run is %s: its pcap is not uploaded yet", run.State)
		return
	case run.Result.Location != jobapi.DestinationConsole:
		writeError(w, http.StatusConflict, "the result is in %s: download it from there", run.Result.Location)
		return
	}
	f, err := os.Open(s.resultPath(j.ID, dev))
	if err != nil && errors.Is(err, os.ErrNotExist) {
		if why := s.resultGone(j, dev); why != "" {
			writeError(w, http.StatusGone, "%s", why)
			return
		}
	}
	if err != nil {
		s.log.Error("open job result", "job", j.ID, "device", dev, "err", err)
		writeError(w, http.StatusNotFound, "the pcap of job %d on device %s is not in the console's data directory (jobs/%d/) although it was stored: it was removed", j.ID, dev, j.ID)
		return
	}
	defer f.Close()
	hostname := ""
	if d, err := s.cfg.Store.GetDevice(r.Context(), dev, s.now()); err == nil {
		hostname = d.Hostname
	}
	// A large pcap takes longer than the admin server's WriteTimeout.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil {
		s.log.Debug("clear write deadline of a download", "err", err)
	}
	w.Header().Set("Content-Type", "application/x-pcapng")
	w.Header().Set("Content-Disposition", `attachment; filename="`+downloadName(j.ID, hostname, dev)+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("ETag", `"`+run.Result.SHA256+`"`)
	http.ServeContent(w, r, "", run.Result.StoredAt, f)
}
