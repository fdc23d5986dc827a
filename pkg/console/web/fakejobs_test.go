package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// The fake console's job policy: what the console's serve flags default to.
const (
	fakeMaxDuration = time.Hour
	fakeMaxBytes    = 1 << 30
	fakeMaxExpiry   = 24 * time.Hour
)

// fakeJobs is the admin API's capture jobs as the shared contract defines
// them: POST /api/v1/jobs with the console's checks (400 with one sentence,
// nothing stored), the list newest first, one job, cancel (409 for a job
// that has ended) and the pcap download with Content-Disposition. A test
// plays the agents with advance and attach.
type fakeJobs struct {
	jobs     []*store.Job
	pcaps    map[string][]byte // "id/device" -> the uploaded file
	deleted  map[string]string // "id/device" -> why the console deleted it since
	requests []fakeJobRequest  // the accepted POSTs
	posts    int               // every POST, accepted or not
}

// fakeJobRequest is the body of POST /api/v1/jobs.
type fakeJobRequest struct {
	Devices     []string `json:"devices"`
	Interfaces  []string `json:"interfaces"`
	Filter      string   `json:"filter"`
	SnapLen     uint32   `json:"snaplen"`
	Duration    string   `json:"duration"`
	MaxPackets  uint64   `json:"max_packets"`
	MaxBytes    uint64   `json:"max_bytes"`
	ExpiresIn   string   `json:"expires_in"`
	Destination string   `json:"destination"`
}

// jobViewJSON is a job as the admin API answers it.
type jobViewJSON struct {
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
	State             string          `json:"state"`
	Runs              []runViewJSON   `json:"runs"`
}

type runViewJSON struct {
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
	Result      *resultJSON        `json:"result"`
	Live        string             `json:"live"`
}

type resultJSON struct {
	Location string `json:"location"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Download string `json:"download,omitempty"`
	Deleted  string `json:"deleted,omitempty"`
}

func (f *fakeAPI) handleJobs(api *http.ServeMux) {
	api.HandleFunc("POST /api/v1/jobs", f.createJob)
	api.HandleFunc("GET /api/v1/jobs", f.listJobs)
	api.HandleFunc("GET /api/v1/jobs/{id}", f.job(f.getJob))
	api.HandleFunc("POST /api/v1/jobs/{id}/cancel", f.job(f.cancelJob))
	api.HandleFunc("GET /api/v1/jobs/{id}/runs/{device}/pcap", f.job(f.getPcap))
}

func (f *fakeAPI) createJob(w http.ResponseWriter, r *http.Request) {
	var req fakeJobRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs.posts++
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON: " + err.Error()})
		return
	}
	j, err := f.newJob(req, time.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	f.jobs.requests = append(f.jobs.requests, req)
	writeJSON(w, http.StatusCreated, f.jobView(j))
}

// newJob checks req as the console does (in its order, with its
// sentences and its default policy), and stores the job with one queued
// run per device.
func (f *fakeAPI) newJob(req fakeJobRequest, now time.Time) (*store.Job, error) {
	if len(req.Devices) == 0 {
		return nil, errors.New(`no devices: give the ids of the devices to capture on, as "devices": ["ID"] (GET /api/v1/devices lists them)`)
	}
	if len(req.Interfaces) == 0 {
		return nil, errors.New(`no interfaces: give the interfaces to capture on each device, as "interfaces": ["eth1"]`)
	}
	if req.Filter != "" {
		// The agent's own checker, as for standing captures.
		msgs := validate([]store.Capture{{Name: "job", Interface: req.Interfaces[0], Filter: req.Filter, Output: store.Output{Dir: "/job"}}})
		if len(msgs) > 0 {
			return nil, errors.New("filter: " + strings.TrimPrefix(msgs[0], "captures[0].filter: "))
		}
	}
	for _, id := range req.Devices {
		d := f.findDevice(id)
		if d == nil || d.Revoked {
			return nil, fmt.Errorf("device %s is not enrolled: GET /api/v1/devices lists them", id)
		}
		for _, i := range req.Interfaces {
			if len(d.Interfaces) > 0 && !slices.Contains(d.Interfaces, i) {
				return nil, fmt.Errorf("device %s (%s) does not report interface %s: it has %s", d.ID, d.Hostname, i, strings.Join(d.Interfaces, ", "))
			}
		}
	}
	spec := store.JobSpec{Interfaces: req.Interfaces, Filter: req.Filter, SnapLen: req.SnapLen, MaxPackets: req.MaxPackets, MaxBytes: req.MaxBytes, Destination: req.Destination}
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("duration %q is not a duration: give one such as 60s or 5m", req.Duration)
		}
		if d > fakeMaxDuration {
			return nil, fmt.Errorf("duration %s is above the console's limit 1h (--job-max-duration): ask for 1h or less", d)
		}
		spec.Duration = d
	}
	if spec.MaxBytes > fakeMaxBytes {
		return nil, fmt.Errorf("max_bytes %d bytes is above the console's limit 1GiB (--job-max-bytes): ask for %d or less", spec.MaxBytes, fakeMaxBytes)
	}
	if spec.SnapLen == 0 {
		spec.SnapLen = 262144
	}
	if spec.Duration == 0 && spec.MaxPackets == 0 && spec.MaxBytes == 0 {
		spec.Duration = time.Minute
	}
	if spec.MaxBytes == 0 {
		spec.MaxBytes = fakeMaxBytes
	}
	expiry := 10 * time.Minute
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("expires_in %q is not a duration: give one such as 10m", req.ExpiresIn)
		}
		if d > fakeMaxExpiry {
			return nil, fmt.Errorf("expires_in %s is above the console's limit 24h (--job-max-expiry): ask for 24h or less", d)
		}
		expiry = d
	}
	switch {
	case spec.Destination == "":
		spec.Destination = jobapi.DestinationConsole
	case spec.Destination == jobapi.DestinationConsole, strings.HasPrefix(spec.Destination, "s3://") && len(spec.Destination) > len("s3://"):
	default:
		return nil, fmt.Errorf(`destination %q: give "console" (the default) or an S3 URL such as s3://bucket/prefix/`, spec.Destination)
	}
	j := &store.Job{ID: int64(len(f.jobs.jobs) + 1), CreatedAt: now, ExpiresAt: now.Add(expiry), Spec: spec}
	for _, id := range req.Devices {
		j.Runs = append(j.Runs, store.Run{JobID: j.ID, Device: id, State: store.RunQueued, UpdatedAt: now,
			Transitions: []store.Transition{{State: store.RunQueued, At: now}}})
	}
	f.jobs.jobs = append(f.jobs.jobs, j)
	return j, nil
}

func (f *fakeAPI) findDevice(id string) *fakeDevice {
	for _, d := range f.devices {
		if d.ID == id {
			return d
		}
	}
	return nil
}

func (f *fakeAPI) job(h func(w http.ResponseWriter, r *http.Request, j *store.Job)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		for _, j := range f.jobs.jobs {
			if j.ID == id {
				h(w, r, j)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no job %s", r.PathValue("id"))})
	}
}

func (f *fakeAPI) listJobs(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	out := []jobViewJSON{}
	for i := len(f.jobs.jobs) - 1; i >= 0 && len(out) < limit; i-- {
		if j := f.jobs.jobs[i]; before == 0 || j.ID < before {
			out = append(out, f.jobView(j))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

func (f *fakeAPI) getJob(w http.ResponseWriter, r *http.Request, j *store.Job) {
	writeJSON(w, http.StatusOK, f.jobView(j))
}

func (f *fakeAPI) cancelJob(w http.ResponseWriter, r *http.Request, j *store.Job) {
	if !slices.ContainsFunc(j.Runs, func(r store.Run) bool { return !r.State.Terminal() }) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("job %d has ended: nothing to cancel", j.ID)})
		return
	}
	now := time.Now()
	if j.CancelRequestedAt.IsZero() {
		j.CancelRequestedAt = now
	}
	for i := range j.Runs {
		if j.Runs[i].State == store.RunQueued {
			transition(&j.Runs[i], store.RunCanceled, "canceled before the device accepted it", now)
		}
	}
	writeJSON(w, http.StatusOK, f.jobView(j))
}

func (f *fakeAPI) getPcap(w http.ResponseWriter, r *http.Request, j *store.Job) {
	i := slices.IndexFunc(j.Runs, func(x store.Run) bool { return x.Device == r.PathValue("device") })
	if i < 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("job %d has no run on device %s", j.ID, r.PathValue("device"))})
		return
	}
	run := j.Runs[i]
	if run.Result == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("run is %s: its pcap is not uploaded yet", run.State)})
		return
	}
	if run.Result.Location != jobapi.DestinationConsole {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the result is in " + run.Result.Location})
		return
	}
	b := f.jobs.pcaps[fmt.Sprintf("%d/%s", j.ID, run.Device)]
	w.Header().Set("Content-Type", "application/x-pcapng")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="job-%d-%s.pcapng"`, j.ID, f.findDevice(run.Device).Hostname))
	http.ServeContent(w, r, "", run.Result.StoredAt, bytes.NewReader(b))
}

func (f *fakeAPI) jobView(j *store.Job) jobViewJSON {
	v := jobViewJSON{ID: j.ID, CreatedAt: j.CreatedAt, ExpiresAt: j.ExpiresAt, CancelRequestedAt: timePtr(j.CancelRequestedAt),
		Interfaces: j.Spec.Interfaces, Filter: j.Spec.Filter, SnapLen: j.Spec.SnapLen, Duration: jobapi.Duration(j.Spec.Duration),
		MaxPackets: j.Spec.MaxPackets, MaxBytes: j.Spec.MaxBytes, Destination: j.Spec.Destination, State: "done", Devices: []string{}, Runs: []runViewJSON{}}
	for _, r := range j.Runs {
		v.Devices = append(v.Devices, r.Device)
		if !r.State.Terminal() {
			v.State = "active"
		}
		rv := runViewJSON{Device: r.Device, Hostname: f.findDevice(r.Device).Hostname, State: r.State, Packets: r.Packets, Bytes: r.Bytes,
			Drops: r.Drops, Size: r.Size, Error: r.Error, UpdatedAt: r.UpdatedAt, Transitions: r.Transitions,
			Live: fmt.Sprintf("/api/v1/jobs/%d/runs/%s/live", j.ID, r.Device)}
		if res := r.Result; res != nil {
			rv.Result = &resultJSON{Location: res.Location, Size: res.Size, SHA256: res.SHA256}
			if res.Location == jobapi.DestinationConsole {
				rv.Result.Download = fmt.Sprintf("/api/v1/jobs/%d/runs/%s/pcap", j.ID, r.Device)
			}
			if why := f.jobs.deleted[fmt.Sprintf("%d/%s", j.ID, r.Device)]; why != "" {
				rv.Result.Download, rv.Result.Deleted = "", why
			}
		}
		v.Runs = append(v.Runs, rv)
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func transition(r *store.Run, s store.RunState, reason string, now time.Time) {
	r.State = s
	r.UpdatedAt = now
	r.Transitions = append(r.Transitions, store.Transition{State: s, At: now, Reason: reason})
	if s == store.RunFailed || s == store.RunCanceled {
		r.Error = reason
	}
}

// advance plays the agent of device on job id: the run moves to state s
// (when it is not in it already) and takes progress p.
func (f *fakeAPI) advance(t *testing.T, id int64, device string, s store.RunState, reason string, p jobapi.Progress) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.run(t, id, device)
	now := time.Now()
	if r.State != s {
		if !r.State.CanBecome(s) {
			t.Fatalf("run %d/%s: %s cannot become %s", id, device, r.State, s)
		}
		transition(r, s, reason, now)
	}
	r.Packets, r.Bytes, r.Drops, r.Size, r.UpdatedAt = p.Packets, p.Bytes, p.Drops, p.Size, now
}

// deleteResult makes the run's stored result one the console deleted
// since, for why (its retention or a space bound).
func (f *fakeAPI) deleteResult(id int64, device, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobs.deleted == nil {
		f.jobs.deleted = map[string]string{}
	}
	key := fmt.Sprintf("%d/%s", id, device)
	f.jobs.deleted[key] = why
	delete(f.jobs.pcaps, key)
}

// attach stores pcap as the run's uploaded result.
func (f *fakeAPI) attach(t *testing.T, id int64, device string, pcap []byte) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.run(t, id, device)
	sum := sha256.Sum256(pcap)
	r.Result = &store.RunResult{Location: jobapi.DestinationConsole, Size: int64(len(pcap)), SHA256: hex.EncodeToString(sum[:]), StoredAt: time.Now()}
	if f.jobs.pcaps == nil {
		f.jobs.pcaps = map[string][]byte{}
	}
	f.jobs.pcaps[fmt.Sprintf("%d/%s", id, device)] = pcap
}

func (f *fakeAPI) run(t *testing.T, id int64, device string) *store.Run {
	t.Helper()
	for _, j := range f.jobs.jobs {
		if j.ID == id {
			for i := range j.Runs {
				if j.Runs[i].Device == device {
					return &j.Runs[i]
				}
			}
		}
	}
	t.Fatalf("no run of job %d on %s", id, device)
	return nil
}

// mustAddJob creates a job behind the page's back, as another admin would.
func (f *fakeAPI) mustAddJob(t *testing.T, req fakeJobRequest) int64 {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.newJob(req, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

func (f *fakeAPI) jobPosts() (accepted []fakeJobRequest, all int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs.requests), f.jobs.posts
}

func (f *fakeAPI) cancelRequested(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs.jobs {
		if j.ID == id {
			return !j.CancelRequestedAt.IsZero()
		}
	}
	return false
}

// mustPcapng is a small valid pcapng of n UDP frames on eth0, as an
// agent's job would upload.
func mustPcapng(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapio.NewWriter(&b, pcapio.WriterOptions{Format: pcapio.FormatPCAPNG, Application: "ringtap test",
		Interfaces: []pcapio.Interface{{Name: "eth0", LinkType: 1, SnapLen: 262144}}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute).UnixNano()
	for i := range n {
		frame := udpFrame(uint16(40000+i), []byte(fmt.Sprintf("ringtap job test packet %d", i)))
		if err := w.WritePacket(&pcapio.Packet{Timestamp: start + int64(i)*int64(time.Millisecond), WireLen: uint32(len(frame)), Data: frame}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// udpFrame is an Ethernet/IPv4/UDP frame from 198.18.0.1 to 198.18.0.2
// port 53 (checksums left 0: valid for UDP, ignored by capinfos).
func udpFrame(srcPort uint16, payload []byte) []byte {
	udpLen := 8 + len(payload)
	ipLen := 20 + udpLen
	f := make([]byte, 14+ipLen)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	ip[2], ip[3] = byte(ipLen>>8), byte(ipLen)
	copy(ip[12:16], []byte{198, 18, 0, 1})
	copy(ip[16:20], []byte{198, 18, 0, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	udp := ip[20:]
	udp[0], udp[1] = byte(srcPort>>8), byte(srcPort)
	udp[2], udp[3] = 0, 53
	udp[4], udp[5] = byte(udpLen>>8), byte(udpLen)
	copy(udp[8:], payload)
	return f
}
