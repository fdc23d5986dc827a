package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// The agent API's paths besides certmgr.EnrollPath and certmgr.RenewPath.
const (
	// ConfigPath: GET ?after=GEN&jobs=SEQ&wait=30s, the device's desired
	// config and its jobs (ConfigResponse), long-polled.
	ConfigPath = "/api/v1/agent/config"
	// HeartbeatPath: POST a Heartbeat; 204.
	HeartbeatPath = "/api/v1/agent/heartbeat"
)

// Long-poll bounds of ConfigPath.
const (
	// DefaultWait is the wait of a config request with after and no wait.
	DefaultWait = 30 * time.Second
	// MaxWait is the longest wait a request may ask for.
	MaxWait = 60 * time.Second
)

// ConfigResponse is the 200 answer of ConfigPath, and of the admin API's
// captures endpoints (which leave out the jobs).
type ConfigResponse struct {
	Generation int64           `json:"generation"`
	Captures   []store.Capture `json:"captures"`
	UpdatedAt  *time.Time      `json:"updated_at"`
	// JobsSeq increases whenever the device's jobs change in a way its
	// agent must see; the agent polls with jobs=JobsSeq. Absent when 0.
	JobsSeq int64 `json:"jobs_seq,omitempty"`
	// Jobs are the device's runs that have not ended (store.DeviceRuns);
	// absent when there are none.
	Jobs []jobapi.AgentJob `json:"jobs,omitempty"`
}

func configResponse(c store.DesiredConfig) ConfigResponse {
	r := ConfigResponse{Generation: c.Generation, Captures: c.Captures, UpdatedAt: timePtr(c.UpdatedAt)}
	if r.Captures == nil {
		r.Captures = []store.Capture{}
	}
	return r
}

// Heartbeat is the body of POST HeartbeatPath. The console keeps it
// whole as the device's last status.
type Heartbeat struct {
	AppliedGeneration int64                 `json:"applied_generation"`
	Hostname          string                `json:"hostname"`
	AgentVersion      string                `json:"agent_version"`
	MachineID         string                `json:"machine_id"`
	Interfaces        []string              `json:"interfaces"`
	Captures          []agent.CaptureStatus `json:"captures"`
	Errors            []string              `json:"errors"`
	Certificate       *HeartbeatCertificate `json:"certificate,omitempty"`
}

// HeartbeatCertificate is the agent's view of its client certificate.
type HeartbeatCertificate struct {
	NotAfter      time.Time `json:"not_after"`
	NeedsReenroll bool      `json:"needs_reenroll"`
}

// agentHandler routes the agent API.
func (s *Server) agentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+certmgr.EnrollPath, s.enroll)
	mux.Handle("POST "+certmgr.RenewPath, s.requireDevice(s.renew))
	mux.Handle("GET "+ConfigPath, s.requireDevice(s.agentConfig))
	mux.Handle("POST "+HeartbeatPath, s.requireDevice(s.heartbeat))
	mux.Handle("POST "+jobapi.ClaimPath, s.requireDevice(s.claimRun))
	mux.Handle("POST "+jobapi.ProgressPath, s.requireDevice(s.runProgress))
	mux.Handle("GET "+jobapi.RunPath, s.requireDevice(s.runCheck))
	mux.Handle("POST "+jobapi.FinishPath, s.requireDevice(s.finishRun))
	mux.Handle("HEAD "+jobapi.PcapPath, s.requireDevice(s.uploadStatus))
	mux.Handle("PATCH "+jobapi.PcapPath, s.requireDevice(s.uploadPcap))
	mux.Handle("POST "+jobapi.LivePath, s.requireDevice(s.livePush))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no agent API endpoint %s %s", r.Method, r.URL.Path)
	})
	return mux
}

// Limits on what an agent says about itself.
const (
	maxNameLen       = 255
	maxInterfaces    = 4096
	maxInterfaceName = 64
)

func checkIdentity(hostname, machineID, version string, ifaces []string) string {
	switch {
	case len(hostname) > maxNameLen:
		return "hostname longer than 255 bytes"
	case len(machineID) > maxNameLen:
		return "machine_id longer than 255 bytes"
	case len(version) > maxNameLen:
		return "agent_version longer than 255 bytes"
	case len(ifaces) > maxInterfaces:
		return "more than 4096 interfaces"
	}
	for _, name := range ifaces {
		if len(name) > maxInterfaceName {
			return "an interface name longer than 64 bytes"
		}
	}
	return ""
}

// enroll answers POST certmgr.EnrollPath: an install key and a CSR make
// a device and its first certificate, or, retried with the same CSR key,
// get the ones issued then.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req certmgr.EnrollRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	if !pki.ValidInstallKey(req.InstallKey) {
		writeError(w, http.StatusUnauthorized, `not an install key: want "rtk_" and 52 characters, as the console printed it`)
		return
	}
	if msg := checkIdentity(req.Hostname, req.MachineID, req.AgentVersion, req.Interfaces); msg != "" {
		writeError(w, http.StatusBadRequest, "enrollment request: %s", msg)
		return
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	fp, err := pki.PublicKeyFingerprint(csr.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	now := s.now()
	id := store.NewID()
	cert, err := s.cfg.CA.SignCSR(csr, id, now, s.cfg.ClientValidity)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	e := store.Enrollment{
		Device: store.Device{
			ID: id, Hostname: req.Hostname, MachineID: req.MachineID, AgentVersion: req.AgentVersion,
			Interfaces: req.Interfaces, EnrolledAt: now, CertSerial: serialOf(cert), CertNotAfter: cert.NotAfter,
		},
		Certificate: store.Certificate{
			Serial: serialOf(cert), DeviceID: id, PublicKeyFingerprint: fp,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw,
		},
	}
	got, replayed, err := s.cfg.Store.ConsumeInstallKey(r.Context(), store.HashSecret(req.InstallKey), e, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusUnauthorized, "unknown install key: create one in the console (POST /api/v1/install-keys)")
		return
	case errors.Is(err, store.ErrKeyUsed):
		writeError(w, http.StatusForbidden, "install key already used: create a new one for this agent")
		return
	case errors.Is(err, store.ErrKeyExpired):
		writeError(w, http.StatusForbidden, "install key expired: create a new one for this agent")
		return
	case errors.Is(err, store.ErrRevoked):
		writeError(w, http.StatusForbidden, "the device this install key enrolled is revoked: create a new key")
		return
	case err != nil:
		s.log.Error("enroll", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the console cannot enroll now: try again")
		return
	}
	if replayed {
		s.log.Info("enrollment retried: same certificate", "device_id", got.Device.ID, "hostname", got.Device.Hostname)
	} else {
		s.log.Info("device enrolled", "device_id", id, "hostname", req.Hostname, "machine_id", req.MachineID, "serial", e.Certificate.Serial)
	}
	// 200 for a new enrollment too: certmgr.Enroll takes 200 only.
	writeJSON(w, http.StatusOK, certmgr.EnrollResponse{
		DeviceID:    got.Device.ID,
		Certificate: string(pemCert(got.Certificate.DER)),
		CA:          string(s.cfg.CA.CertPEM()),
	})
}

// renew answers POST certmgr.RenewPath: a CSR for the key of the
// connection's certificate gets its successor.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, d device) {
	var req certmgr.RenewRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	now := s.now()
	cert, err := s.cfg.CA.Renew(d.Cert, csr, now, s.cfg.ClientValidity)
	switch {
	case errors.Is(err, pki.ErrKeyMismatch):
		writeError(w, http.StatusForbidden, "%v: renewal keeps the key; enroll again to change it", err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	fp, err := pki.PublicKeyFingerprint(cert.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	err = s.cfg.Store.RenewCertificate(r.Context(), store.Certificate{
		Serial: serialOf(cert), DeviceID: d.ID, PublicKeyFingerprint: fp,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw,
	})
	switch {
	case errors.Is(err, store.ErrKeyMismatch):
		writeError(w, http.StatusForbidden, "%v: enroll again to change the key", err)
		return
	case errors.Is(err, store.ErrRevoked):
		writeError(w, http.StatusForbidden, "device %s is revoked: enroll it again with a new install key", d.ID)
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusForbidden, "device %s is not known to this console", d.ID)
		return
	case err != nil:
		s.log.Error("renew", "device_id", d.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the console cannot renew now: try again")
		return
	}
	s.log.Info("certificate renewed", "device_id", d.ID, "serial", serialOf(cert), "not_after", cert.NotAfter)
	writeJSON(w, http.StatusOK, certmgr.RenewResponse{Certificate: string(pki.EncodeCertPEM(cert))})
}

// agentConfig answers GET ConfigPath: the device's desired config and
// jobs at once when its generation is above after or its jobs_seq above
// jobs (or after is absent), else when a change makes it so within wait,
// else 304. Without jobs, only the generation is waited on.
func (s *Server) agentConfig(w http.ResponseWriter, r *http.Request, d device) {
	q := r.URL.Query()
	after := int64(-1)
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "after=%q is not a generation: give the generation the agent runs (0 or more)", v)
			return
		}
		after = n
	}
	jobsAfter := int64(-1)
	if v := q.Get("jobs"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "jobs=%q is not a jobs sequence: give the jobs_seq of the last answer (0 or more)", v)
			return
		}
		jobsAfter = n
	}
	wait := DefaultWait
	if v := q.Get("wait"); v != "" {
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			writeError(w, http.StatusBadRequest, "wait=%q is not a duration: give one such as 30s (at most %s)", v, MaxWait)
			return
		}
		wait = min(dur, MaxWait)
	}
	var (
		c   store.DesiredConfig
		err error
	)
	switch {
	case after < 0 || wait == 0:
		c, err = s.cfg.Store.GetCaptures(r.Context(), d.ID)
		if err == nil && c.Generation <= after && (jobsAfter < 0 || c.JobsSeq <= jobsAfter) {
			err = context.DeadlineExceeded // nothing newer, and no wait
		}
	case jobsAfter < 0:
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		s.metrics.longPolls.Add(1)
		c, err = s.cfg.Store.WaitForChange(ctx, d.ID, after)
		s.metrics.longPolls.Add(-1)
	default:
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		s.metrics.longPolls.Add(1)
		c, err = s.cfg.Store.WaitForChanges(ctx, d.ID, after, jobsAfter)
		s.metrics.longPolls.Add(-1)
	}
	var jobs []jobapi.AgentJob
	if err == nil {
		jobs, err = s.deviceJobs(r.Context(), d.ID)
	}
	switch {
	case err == nil:
		resp := configResponse(c)
		resp.JobsSeq, resp.Jobs = c.JobsSeq, jobs
		w.Header().Set("ETag", `"`+itoa(c.Generation)+`"`)
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, store.ErrRevoked):
		writeError(w, http.StatusForbidden, "device %s is revoked: enroll it again with a new install key", d.ID)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusForbidden, "device %s is not known to this console", d.ID)
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotModified)
	case s.polls.Err() != nil || errors.Is(err, store.ErrClosed):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the console is stopping: poll again")
	case r.Context().Err() != nil:
		// The agent went away; nobody reads an answer.
	default:
		s.log.Error("wait for config", "device_id", d.ID, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the console cannot read the config now: try again")
	}
}

// heartbeat answers POST HeartbeatPath: the body becomes the device's
// last status.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, d device) {
	var hb Heartbeat
	body, ok := readJSON(w, r, &hb)
	if !ok {
		return
	}
	if msg := checkIdentity(hb.Hostname, hb.MachineID, hb.AgentVersion, hb.Interfaces); msg != "" {
		writeError(w, http.StatusBadRequest, "heartbeat: %s", msg)
		return
	}
	err := s.cfg.Store.PutStatus(r.Context(), d.ID, store.Status{
		Time:              s.now(),
		AppliedGeneration: hb.AppliedGeneration,
		Hostname:          hb.Hostname,
		AgentVersion:      hb.AgentVersion,
		Interfaces:        hb.Interfaces,
		Document:          body,
	})
	switch {
	case errors.Is(err, store.ErrRevoked):
		writeError(w, http.StatusForbidden, "device %s is revoked: enroll it again with a new install key", d.ID)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusForbidden, "device %s is not known to this console", d.ID)
	case err != nil:
		s.log.Error("store heartbeat", "device_id", d.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the console cannot store the heartbeat now: try again")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
