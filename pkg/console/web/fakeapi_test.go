package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// fakeAPI is the console's admin API as the shared contract defines it, in
// memory: bearer token, devices with the list fields derived from the last
// heartbeat, captures with generations, If-Match (409, 428), validation by
// the agent's own config parser (422 with "errors"), revoke, status and
// install keys, and capture jobs (fakejobs_test.go). The page under test
// talks to it exactly as to the console.
type fakeAPI struct {
	mu      sync.Mutex
	token   string
	now     func() time.Time
	devices []*fakeDevice
	keys    []fakeKeyRequest
	puts    int // accepted PUTs of a capture list
	jobs    fakeJobs
}

type fakeDevice struct {
	ID            string
	Hostname      string
	MachineID     string
	AgentVersion  string
	Interfaces    []string
	CertNotAfter  time.Time
	Revoked       bool
	LastHeartbeat time.Time // zero: never
	Generation    int64
	Captures      []store.Capture
	Status        *fakeStatus // nil before the first heartbeat
	// StatusSummary adds to the status what the console adds to a
	// heartbeat: "generation" and each capture's "dropped". Without it the
	// status is the heartbeat as it was sent.
	StatusSummary bool
}

// fakeStatus is a heartbeat as the agent sends it.
type fakeStatus struct {
	AppliedGeneration int64                 `json:"applied_generation"`
	Hostname          string                `json:"hostname"`
	AgentVersion      string                `json:"agent_version"`
	MachineID         string                `json:"machine_id"`
	Interfaces        []string              `json:"interfaces"`
	Captures          []agent.CaptureStatus `json:"captures"`
	Errors            []string              `json:"errors"`
	Certificate       struct {
		NotAfter      time.Time `json:"not_after"`
		NeedsReenroll bool      `json:"needs_reenroll"`
	} `json:"certificate"`
	NeedsReenroll bool `json:"-"` // newFakeAPI's shorthand for Certificate.NeedsReenroll
}

type fakeKeyRequest struct {
	ExpiresIn string `json:"expires_in"`
	Note      string `json:"note"`
}

// deviceJSON is one device of GET /api/v1/devices, as the console sends
// it: the counts of the last heartbeat, not its errors' text or its
// certificate.
type deviceJSON struct {
	ID                 string    `json:"id"`
	Hostname           string    `json:"hostname"`
	MachineID          string    `json:"machine_id"`
	State              string    `json:"state"`
	LastHeartbeat      time.Time `json:"last_heartbeat,omitzero"`
	AgentVersion       string    `json:"agent_version"`
	Interfaces         []string  `json:"interfaces"`
	CertNotAfter       time.Time `json:"cert_not_after"`
	DuplicateMachineID bool      `json:"duplicate_machine_id"`
	Generation         int64     `json:"generation"`
	AppliedGeneration  int64     `json:"applied_generation"`
	CapturesRunning    int       `json:"captures_running"`
	CapturesTotal      int       `json:"captures_total"`
	Drops              uint64    `json:"drops"`
	Errors             int       `json:"errors"`
}

// The fake's secrets have the console's formats: "rta_" or "rtk_" and 52
// lowercase base32 characters, and a SHA-256 CA fingerprint.
const (
	fakeToken         = "rta_4kee2cqpmqv55jnxai3iofs3dod6hvnmytypldwvhuwbhhmihzsa"
	fakeInstallKey    = "rtk_izajr3qnac25kqtueb745ay4czkxoqebtnyz3chlnp3lbqh4kpva"
	fakeEnrollCommand = "ringtap agent enroll --console https://console.example:8443 --key " + fakeInstallKey +
		" --ca-fingerprint sha256:faa09070649efd8833ea3fcdde953574957efd420a9085af09a19402fc8919e8"
)

// newFakeAPI is a console with a small fleet: two sensors that share a
// machine id (cloned VMs), one of them dropping, the other with a capture
// that failed; one stale whose certificate needs re-enrollment; one
// revoked.
func newFakeAPI(now time.Time) *fakeAPI {
	f := &fakeAPI{token: fakeToken, now: func() time.Time { return now }}
	dir := func(name string) store.Output { return store.Output{Dir: "/var/lib/ringtap/" + name} }
	running := func(name, iface, hook string, seen, captured, ringDrops, writeDrops uint64) agent.CaptureStatus {
		return agent.CaptureStatus{Name: name, Interface: iface, Hook: hook, State: "running",
			Seen: seen, Matched: captured + ringDrops, Captured: captured, RingDrops: ringDrops, Written: captured - writeDrops, WriteDrops: writeDrops}
	}
	withCopyFailures := func(c agent.CaptureStatus, n uint64) agent.CaptureStatus {
		c.CopyFailures = n
		c.Matched += n
		return c
	}
	add := func(d *fakeDevice, st *fakeStatus) {
		if st != nil {
			st.AppliedGeneration = d.Generation
			st.Hostname, st.AgentVersion, st.MachineID, st.Interfaces = d.Hostname, d.AgentVersion, d.MachineID, d.Interfaces
			st.Certificate.NotAfter = d.CertNotAfter
			st.Certificate.NeedsReenroll = st.NeedsReenroll
		}
		d.Status = st
		f.devices = append(f.devices, d)
	}
	add(&fakeDevice{
		ID: "dev_7k2m9q4x", Hostname: "edge-fra-01", MachineID: "3f2a9c0d6e1b4a7f8c5d2e9b0a1c3d4e", AgentVersion: "0.9.2",
		Interfaces: []string{"eth0", "eth1", "lo"}, CertNotAfter: now.Add(41 * 24 * time.Hour), LastHeartbeat: now.Add(-4 * time.Second),
		Generation: 7, StatusSummary: true,
		Captures: []store.Capture{
			{Name: "web", Interface: "eth0", Filter: "tcp port 443 or tcp port 80", SnapLen: 256, Hook: "xdp", Direction: "in", Output: dir("web")},
			{Name: "dns", Interface: "eth0", Filter: "udp port 53", Hook: "tc", Direction: "inout", Output: dir("dns")},
			{Name: "mirror", Interface: "eth1", Direction: "in", MonitorPort: true, Output: dir("mirror")},
		},
	}, &fakeStatus{Captures: []agent.CaptureStatus{
		running("web", "eth0", "xdp", 18_734_221, 4_120_993, 0, 0),
		running("dns", "eth0", "tc", 18_734_221, 61_337, 0, 0),
		withCopyFailures(running("mirror", "eth1", "xdp", 91_220_517, 91_214_002, 1_200, 26), 8),
	}})
	add(&fakeDevice{
		ID: "dev_p3w8n1c5", Hostname: "edge-fra-02", MachineID: "3f2a9c0d6e1b4a7f8c5d2e9b0a1c3d4e", AgentVersion: "0.9.2",
		Interfaces: []string{"eth0", "lo"}, CertNotAfter: now.Add(40 * 24 * time.Hour), LastHeartbeat: now.Add(-12 * time.Second),
		Generation: 3,
		Captures: []store.Capture{
			{Name: "web", Interface: "eth0", Filter: "tcp port 443", Output: dir("web")},
			{Name: "ssh", Interface: "eth0", Filter: "tcp port 22", Output: dir("ssh")},
		},
	}, &fakeStatus{Captures: []agent.CaptureStatus{
		running("web", "eth0", "xdp", 2_004_117, 1_330_870, 0, 0),
		{Name: "ssh", Interface: "eth0", State: "failed", LastError: "attach xdp to eth0: device or resource busy"},
	}, Errors: []string{"capture ssh on eth0: failed: attach xdp to eth0: device or resource busy"}})
	add(&fakeDevice{
		ID: "dev_b6t0r2z8", Hostname: "lab-ams-07", MachineID: "a07c1e5f9b3d4c2e8f6a0b1c2d3e4f50", AgentVersion: "0.9.1",
		Interfaces: []string{"ens3"}, CertNotAfter: now.Add(5 * 24 * time.Hour), LastHeartbeat: now.Add(-17 * time.Minute),
		Generation: 1,
		Captures:   []store.Capture{{Name: "all", Interface: "ens3", Output: dir("all")}},
	}, &fakeStatus{Captures: []agent.CaptureStatus{withCopyFailures(running("all", "ens3", "xdp", 55_012, 55_012, 0, 0), 2)}, NeedsReenroll: true,
		Errors: []string{"the console refused the client certificate (renew: 403 certificate 1f is not this device's current one): run `ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256` with a new install key"}})
	add(&fakeDevice{
		ID: "dev_q9e4h7j1", Hostname: "old-sensor-3", MachineID: "5c1d9e2f3a4b5c6d7e8f9a0b1c2d3e4f", AgentVersion: "0.8.0",
		Interfaces: []string{"eth0"}, CertNotAfter: now.Add(12 * 24 * time.Hour), LastHeartbeat: now.Add(-26 * time.Hour),
		Revoked: true, Generation: 2,
		Captures: []store.Capture{{Name: "web", Interface: "eth0", Filter: "tcp port 443", Output: dir("web")}},
	}, nil)
	return f
}

// handler is the fake admin API under /api/v1/ and the page under test at /.
func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/devices", f.listDevices)
	api.HandleFunc("GET /api/v1/devices/{id}", f.device(f.getDevice))
	api.HandleFunc("GET /api/v1/devices/{id}/captures", f.device(f.getCaptures))
	api.HandleFunc("PUT /api/v1/devices/{id}/captures", f.device(f.putCaptures))
	api.HandleFunc("POST /api/v1/devices/{id}/revoke", f.device(f.revoke))
	api.HandleFunc("GET /api/v1/devices/{id}/status", f.device(f.status))
	api.HandleFunc("POST /api/v1/install-keys", f.createKey)
	f.handleJobs(api)
	mux.Handle("/api/v1/", f.auth(api))
	return mux
}

func (f *fakeAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+f.token
		f.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// setToken changes the admin token, as a console restarted with a new data
// directory would.
func (f *fakeAPI) setToken(t string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = t
}

// update changes a device behind the page's back.
func (f *fakeAPI) update(id string, fn func(d *fakeDevice)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.devices {
		if d.ID == id {
			fn(d)
		}
	}
}

func (f *fakeAPI) putCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

func (f *fakeAPI) lastKeyRequest() (fakeKeyRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.keys) == 0 {
		return fakeKeyRequest{}, false
	}
	return f.keys[len(f.keys)-1], true
}

func (f *fakeAPI) device(h func(w http.ResponseWriter, r *http.Request, d *fakeDevice)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		i := slices.IndexFunc(f.devices, func(d *fakeDevice) bool { return d.ID == r.PathValue("id") })
		if i < 0 {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no device " + r.PathValue("id")})
			return
		}
		h(w, r, f.devices[i])
	}
}

func (f *fakeAPI) listDevices(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []deviceJSON{}
	for _, d := range f.devices {
		out = append(out, f.deviceJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (f *fakeAPI) deviceJSON(d *fakeDevice) deviceJSON {
	j := deviceJSON{ID: d.ID, Hostname: d.Hostname, MachineID: d.MachineID, LastHeartbeat: d.LastHeartbeat,
		AgentVersion: d.AgentVersion, Interfaces: d.Interfaces, CertNotAfter: d.CertNotAfter, CapturesTotal: len(d.Captures),
		Generation: d.Generation}
	switch {
	case d.Revoked:
		j.State = string(store.StateRevoked)
	case !d.LastHeartbeat.IsZero() && f.now().Sub(d.LastHeartbeat) < time.Minute:
		j.State = string(store.StateOnline)
	default:
		j.State = string(store.StateStale)
	}
	for _, o := range f.devices {
		if o != d && o.MachineID == d.MachineID {
			j.DuplicateMachineID = true
		}
	}
	if d.Status != nil {
		j.AppliedGeneration = d.Status.AppliedGeneration
		j.Errors = len(d.Status.Errors)
		for _, c := range d.Status.Captures {
			if c.State == "running" {
				j.CapturesRunning++
			}
			j.Drops += c.RingDrops + c.CopyFailures + c.WriteDrops
		}
	}
	return j
}

func (f *fakeAPI) getDevice(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	writeJSON(w, http.StatusOK, f.deviceJSON(d))
}

func (f *fakeAPI) getCaptures(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	writeJSON(w, http.StatusOK, map[string]any{"generation": d.Generation, "captures": nonNil(d.Captures)})
}

func (f *fakeAPI) putCaptures(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	im := r.Header.Get("If-Match")
	if im == "" {
		writeJSON(w, http.StatusPreconditionRequired, map[string]string{"error": "If-Match with the generation read is required"})
		return
	}
	gen, err := strconv.ParseInt(im, 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "If-Match is not a generation"})
		return
	}
	var body struct {
		Captures []store.Capture `json:"captures"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON: " + err.Error()})
		return
	}
	if gen != d.Generation {
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("generation %d is stale: the device is at %d", gen, d.Generation)})
		return
	}
	if msgs := validate(body.Captures); len(msgs) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "the agent would reject this configuration", "errors": msgs})
		return
	}
	d.Generation++
	d.Captures = body.Captures
	f.puts++
	writeJSON(w, http.StatusOK, map[string]any{"generation": d.Generation, "captures": nonNil(d.Captures)})
}

// validate checks captures with the agent's config parser, as the console
// does, and gives its messages as "captures[0].filter: ...".
func validate(caps []store.Capture) []string {
	if len(caps) == 0 {
		return nil // an empty list stops every capture
	}
	data, err := json.Marshal(map[string]any{"captures": caps})
	if err != nil {
		return []string{err.Error()}
	}
	_, err = config.Parse(data, "captures")
	if err == nil {
		return nil
	}
	var msgs []string
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*config.Error); ok && ce.Path != "" {
			msgs = append(msgs, ce.Path+": "+ce.Msg)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			if _, isErr := err.(*config.Error); !isErr {
				for _, e := range j.Unwrap() {
					walk(e)
				}
				return
			}
		}
		msgs = append(msgs, err.Error())
	}
	walk(err)
	return msgs
}

func (f *fakeAPI) revoke(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	d.Revoked = true
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "state": "revoked"})
}

func (f *fakeAPI) status(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	if d.Status == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no heartbeat from this device yet"})
		return
	}
	b, _ := json.Marshal(d.Status)
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	doc["received_at"] = d.LastHeartbeat
	if d.StatusSummary {
		doc["generation"] = d.Status.AppliedGeneration
		caps, _ := doc["captures"].([]any)
		for i, c := range d.Status.Captures {
			if m, ok := caps[i].(map[string]any); ok {
				m["dropped"] = c.RingDrops + c.CopyFailures + c.WriteDrops
			}
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

func (f *fakeAPI) createKey(w http.ResponseWriter, r *http.Request) {
	var req fakeKeyRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON: " + err.Error()})
		return
	}
	ttl, err := time.ParseDuration(req.ExpiresIn)
	if err != nil || ttl <= 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("expires_in %q is not a positive duration such as 24h", req.ExpiresIn)})
		return
	}
	f.mu.Lock()
	f.keys = append(f.keys, req)
	now := f.now()
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"key": fakeInstallKey, "expires_at": now.Add(ttl), "enroll_command": fakeEnrollCommand,
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}
