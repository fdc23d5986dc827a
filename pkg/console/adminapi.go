package console

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// Install key expiry bounds (POST /api/v1/install-keys expires_in).
const (
	DefaultKeyExpiry = 24 * time.Hour
	MaxKeyExpiry     = 30 * 24 * time.Hour
	minKeyExpiry     = time.Minute
	maxNoteLen       = 1024
)

// adminHandler routes the admin listener: the admin API under /api/,
// behind the admin token, and the web page everywhere else.
func (s *Server) adminHandler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("POST /api/v1/install-keys", s.createInstallKey)
	api.HandleFunc("GET /api/v1/install-keys", s.listInstallKeys)
	api.HandleFunc("POST /api/v1/admin-tokens", s.createAdminToken)
	api.HandleFunc("GET /api/v1/admin-tokens", s.listAdminTokens)
	api.HandleFunc("DELETE /api/v1/admin-tokens/{id}", s.deleteAdminToken)
	api.HandleFunc("GET /api/v1/devices", s.listDevices)
	api.HandleFunc("GET /api/v1/devices/{id}", s.getDevice)
	api.HandleFunc("GET /api/v1/devices/{id}/captures", s.getCaptures)
	api.HandleFunc("PUT /api/v1/devices/{id}/captures", s.putCaptures)
	api.HandleFunc("POST /api/v1/devices/{id}/revoke", s.revokeDevice)
	api.HandleFunc("GET /api/v1/devices/{id}/status", s.getStatus)
	api.HandleFunc("POST /api/v1/jobs", s.createJob)
	api.HandleFunc("GET /api/v1/jobs", s.listJobs)
	api.HandleFunc("GET /api/v1/jobs/{id}", s.getJob)
	api.HandleFunc("POST /api/v1/jobs/{id}/cancel", s.cancelJob)
	api.HandleFunc("GET /api/v1/jobs/{id}/runs/{device}/pcap", s.downloadPcap)
	api.HandleFunc("GET /api/v1/jobs/{id}/runs/{device}/live", s.liveClient)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no admin API endpoint %s %s", r.Method, r.URL.Path)
	})
	mux := http.NewServeMux()
	mux.Handle("/api/", s.requireAdmin(api))
	mux.Handle("/", s.cfg.Web)
	return securityHeaders(mux)
}

// securityHeaders sets the headers every admin answer carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

// installKeyRequest is the body of POST /api/v1/install-keys; an empty
// body takes the defaults.
type installKeyRequest struct {
	// ExpiresIn is a Go duration ("24h"), DefaultKeyExpiry when empty.
	ExpiresIn string `json:"expires_in"`
	Note      string `json:"note"`
}

// installKeyResponse is the 201 answer: the key is shown this once.
type installKeyResponse struct {
	Key           string    `json:"key"`
	ExpiresAt     time.Time `json:"expires_at"`
	Note          string    `json:"note"`
	EnrollCommand string    `json:"enroll_command"`
}

// installKeyView is a key in the list: its hash prefix, never the key.
type installKeyView struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	Note      string     `json:"note"`
	State     string     `json:"state"` // unused, used, expired
	UsedAt    *time.Time `json:"used_at"`
	DeviceID  string     `json:"device_id,omitempty"`
}

func (s *Server) createInstallKey(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req installKeyRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
	}
	expiry := DefaultKeyExpiry
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d < minKeyExpiry || d > MaxKeyExpiry {
			writeError(w, http.StatusBadRequest, "expires_in %q: give a duration from 1m to 720h, such as 24h", req.ExpiresIn)
			return
		}
		expiry = d
	}
	if len(req.Note) > maxNoteLen {
		writeError(w, http.StatusBadRequest, "note longer than %d bytes", maxNoteLen)
		return
	}
	key, _ := pki.NewInstallKey()
	now := s.now()
	k := store.InstallKey{Hash: store.HashSecret(key), CreatedAt: now, ExpiresAt: now.Add(expiry), Note: req.Note}
	if err := s.cfg.Store.CreateInstallKey(r.Context(), k); err != nil {
		s.log.Error("create install key", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the console cannot store the key now: try again")
		return
	}
	s.log.Info("install key created", "id", k.Hash.ID(), "expires_at", k.ExpiresAt, "note", k.Note)
	writeJSON(w, http.StatusCreated, installKeyResponse{
		Key:           key,
		ExpiresAt:     k.ExpiresAt.UTC(),
		Note:          k.Note,
		EnrollCommand: fmt.Sprintf("ringtap agent enroll --console %s --key %s --ca-fingerprint %s", s.agentURL, key, s.cfg.CA.Fingerprint()),
	})
}

func (s *Server) listInstallKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Store.ListInstallKeys(r.Context())
	if err != nil {
		s.storeError(w, "list install keys", err)
		return
	}
	now := s.now()
	out := make([]installKeyView, 0, len(keys))
	for _, k := range keys {
		v := installKeyView{ID: k.Hash.ID(), CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, Note: k.Note,
			State: "unused", UsedAt: timePtr(k.UsedAt), DeviceID: k.DeviceID}
		switch {
		case !k.UsedAt.IsZero():
			v.State = "used"
		case !now.Before(k.ExpiresAt):
			v.State = "expired"
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"install_keys": out})
}

// deviceView is a device as the admin API shows it.
type deviceView struct {
	ID            string      `json:"id"`
	Hostname      string      `json:"hostname"`
	MachineID     string      `json:"machine_id"`
	State         store.State `json:"state"`
	LastHeartbeat *time.Time  `json:"last_heartbeat"`
	AgentVersion  string      `json:"agent_version"`
	Interfaces    []string    `json:"interfaces"`
	EnrolledAt    time.Time   `json:"enrolled_at"`
	CertSerial    string      `json:"cert_serial"`
	CertNotAfter  time.Time   `json:"cert_not_after"`
	RevokedAt     *time.Time  `json:"revoked_at"`
	// DuplicateMachineID is true when another device that is not revoked
	// has the same machine id (a cloned VM, most often).
	DuplicateMachineID bool `json:"duplicate_machine_id"`
	// Generation is the desired config's, AppliedGeneration the one the
	// last heartbeat reported.
	Generation        int64 `json:"generation"`
	AppliedGeneration int64 `json:"applied_generation"`
	// CapturesRunning, CapturesTotal and Drops sum up the last heartbeat
	// (drops: ring drops, copy failures and write drops of every capture).
	CapturesRunning int    `json:"captures_running"`
	CapturesTotal   int    `json:"captures_total"`
	Drops           uint64 `json:"drops"`
	// Errors counts the errors the last heartbeat reported; ErrorTexts
	// are the first maxListedErrors of them.
	Errors     int      `json:"errors"`
	ErrorTexts []string `json:"error_texts"`
	// CaptureStates are the last heartbeat's captures, name and state.
	CaptureStates []captureState `json:"capture_states"`
	// NeedsReenroll is the last heartbeat's word on the agent's
	// certificate (expired, or refused by this console).
	NeedsReenroll bool `json:"needs_reenroll"`
}

// captureState is a capture's state as the device list gives it.
type captureState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// maxListedErrors bounds the error texts of a device in the list (its
// status has them all).
const maxListedErrors = 10

// view builds a device's view from the store.
func (s *Server) view(r *http.Request, d store.Device, dup map[string]bool) (deviceView, error) {
	c, err := s.cfg.Store.GetCaptures(r.Context(), d.ID)
	if err != nil {
		return deviceView{}, err
	}
	st, err := s.cfg.Store.GetStatus(r.Context(), d.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return makeView(d, dup, c.Generation, nil), nil
	case err != nil:
		return deviceView{}, err
	}
	return makeView(d, dup, c.Generation, &st), nil
}

// makeView builds a device's view from its record, its desired config's
// generation and its last status (nil: no heartbeat yet).
func makeView(d store.Device, dup map[string]bool, generation int64, st *store.Status) deviceView {
	v := deviceView{
		ID: d.ID, Hostname: d.Hostname, MachineID: d.MachineID, State: d.State,
		LastHeartbeat: timePtr(d.LastHeartbeat), AgentVersion: d.AgentVersion, Interfaces: d.Interfaces,
		EnrolledAt: d.EnrolledAt, CertSerial: d.CertSerial, CertNotAfter: d.CertNotAfter,
		RevokedAt: timePtr(d.RevokedAt), DuplicateMachineID: dup[d.ID],
	}
	if v.Interfaces == nil {
		v.Interfaces = []string{}
	}
	v.ErrorTexts, v.CaptureStates = []string{}, []captureState{}
	v.Generation = generation
	if st == nil {
		return v
	}
	v.AppliedGeneration = st.AppliedGeneration
	var hb Heartbeat
	if json.Unmarshal(st.Document, &hb) == nil {
		v.CapturesTotal = len(hb.Captures)
		v.Errors = len(hb.Errors)
		v.ErrorTexts = append(v.ErrorTexts, hb.Errors[:min(len(hb.Errors), maxListedErrors)]...)
		v.NeedsReenroll = hb.Certificate != nil && hb.Certificate.NeedsReenroll
		for _, c := range hb.Captures {
			v.CaptureStates = append(v.CaptureStates, captureState{Name: c.Name, State: c.State})
			if c.State == "running" {
				v.CapturesRunning++
			}
			v.Drops += c.RingDrops + c.CopyFailures + c.WriteDrops
		}
	}
	return v
}

// duplicates returns the devices whose machine id another device has.
func (s *Server) duplicates(ctx context.Context) (map[string]bool, error) {
	dups, err := s.cfg.Store.DuplicateMachineIDs(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, d := range dups {
		for _, id := range d.DeviceIDs {
			m[id] = true
		}
	}
	return m, nil
}

// deviceViews returns every device's view, in four queries whatever the
// number of devices: the device list and the console's metrics.
func (s *Server) deviceViews(ctx context.Context) ([]deviceView, error) {
	devs, err := s.cfg.Store.ListDevices(ctx, s.now())
	if err != nil {
		return nil, err
	}
	dup, err := s.duplicates(ctx)
	if err != nil {
		return nil, err
	}
	gens, err := s.cfg.Store.ListGenerations(ctx)
	if err != nil {
		return nil, err
	}
	sts, err := s.cfg.Store.ListStatuses(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]deviceView, 0, len(devs))
	for _, d := range devs {
		var st *store.Status
		if x, ok := sts[d.ID]; ok {
			st = &x
		}
		out = append(out, makeView(d, dup, gens[d.ID], st))
	}
	return out, nil
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	out, err := s.deviceViews(r.Context())
	if err != nil {
		s.storeError(w, "list devices", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

// lookup returns the device the URL names; on failure it has answered.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (store.Device, bool) {
	id := r.PathValue("id")
	if !pki.ValidDeviceID(id) {
		writeError(w, http.StatusNotFound, "no device %q", id)
		return store.Device{}, false
	}
	d, err := s.cfg.Store.GetDevice(r.Context(), id, s.now())
	if err != nil {
		s.storeError(w, "device "+id, err)
		return store.Device{}, false
	}
	return d, true
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	dup, err := s.duplicates(r.Context())
	if err != nil {
		s.storeError(w, "device "+d.ID, err)
		return
	}
	v, err := s.view(r, d, dup)
	if err != nil {
		s.storeError(w, "device "+d.ID, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getCaptures(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	c, err := s.cfg.Store.GetCaptures(r.Context(), d.ID)
	if err != nil {
		s.storeError(w, "captures of "+d.ID, err)
		return
	}
	w.Header().Set("ETag", `"`+itoa(c.Generation)+`"`)
	writeJSON(w, http.StatusOK, configResponse(c))
}

// putCapturesRequest is the body of PUT .../captures: what GET answered,
// changed. Generation and UpdatedAt may be sent back; If-Match decides.
type putCapturesRequest struct {
	Captures   *[]store.Capture `json:"captures"`
	Generation *int64           `json:"generation"`
	UpdatedAt  *time.Time       `json:"updated_at"`
}

// parseIfMatch reads If-Match: a generation, bare or quoted as an ETag,
// or * for any.
func parseIfMatch(v string) (int64, bool) {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "W/"))
	if v == "*" {
		return store.AnyGeneration, true
	}
	n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
	return n, err == nil && n >= 0
}

func (s *Server) putCaptures(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	im := r.Header.Get("If-Match")
	if im == "" {
		writeError(w, http.StatusPreconditionRequired, "no If-Match: send the generation you read (GET .../captures) as If-Match, so that a change made meanwhile is not overwritten")
		return
	}
	gen, ok := parseIfMatch(im)
	if !ok {
		writeError(w, http.StatusBadRequest, "If-Match %q is not a generation: send the number GET .../captures answered", im)
		return
	}
	var req putCapturesRequest
	if _, ok := readJSON(w, r, &req); !ok {
		return
	}
	if req.Captures == nil {
		writeError(w, http.StatusBadRequest, `no "captures": send {"captures": [...]} (an empty list stops every capture)`)
		return
	}
	caps := *req.Captures
	if msgs := checkCaptures(caps); len(msgs) > 0 {
		msg := msgs[0]
		if len(msgs) > 1 {
			msg = fmt.Sprintf("%s (and %d more problems)", msg, len(msgs)-1)
		}
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: msg, Errors: msgs})
		return
	}
	if caps == nil {
		caps = []store.Capture{}
	}
	c, err := s.cfg.Store.PutCaptures(r.Context(), d.ID, gen, caps, s.now())
	switch {
	case errors.Is(err, store.ErrStaleGeneration):
		cur, _ := s.cfg.Store.GetCaptures(r.Context(), d.ID)
		writeError(w, http.StatusConflict, "the captures changed meanwhile (generation %d, not %s): read them again and redo the change", cur.Generation, im)
		return
	case errors.Is(err, store.ErrRevoked):
		writeError(w, http.StatusConflict, "device %s is revoked: its captures cannot change", d.ID)
		return
	case err != nil:
		s.storeError(w, "put captures of "+d.ID, err)
		return
	}
	s.log.Info("desired captures changed", "device_id", d.ID, "generation", c.Generation, "captures", len(c.Captures))
	w.Header().Set("ETag", `"`+itoa(c.Generation)+`"`)
	writeJSON(w, http.StatusOK, configResponse(c))
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	id := d.ID
	d, err := s.cfg.Store.RevokeDevice(r.Context(), id, s.now())
	if err != nil {
		s.storeError(w, "revoke "+id, err)
		return
	}
	s.log.Info("device revoked", "device_id", d.ID, "hostname", d.Hostname)
	dup, err := s.duplicates(r.Context())
	if err != nil {
		s.storeError(w, "device "+d.ID, err)
		return
	}
	v, err := s.view(r, d, dup)
	if err != nil {
		s.storeError(w, "device "+d.ID, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	st, err := s.cfg.Store.GetStatus(r.Context(), d.ID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "device %s has sent no heartbeat yet", d.ID)
		return
	} else if err != nil {
		s.storeError(w, "status of "+d.ID, err)
		return
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(st.Document, &doc); err != nil || doc == nil {
		doc = map[string]json.RawMessage{}
	}
	at, _ := json.Marshal(st.Time.UTC())
	doc["received_at"] = at
	addStatusSummary(doc)
	writeJSON(w, http.StatusOK, doc)
}

// addStatusSummary adds to a heartbeat document what an admin asks
// first: "generation" (the applied one) and, per capture, "dropped": the
// matched packets that did not reach a file (ring_drops + copy_failures
// + write_drops).
func addStatusSummary(doc map[string]json.RawMessage) {
	if g, ok := doc["applied_generation"]; ok {
		doc["generation"] = g
	}
	var caps []map[string]json.RawMessage
	if json.Unmarshal(doc["captures"], &caps) != nil {
		return
	}
	for _, c := range caps {
		var dropped uint64
		for _, k := range []string{"ring_drops", "copy_failures", "write_drops"} {
			var n uint64
			if json.Unmarshal(c[k], &n) == nil {
				dropped += n
			}
		}
		c["dropped"], _ = json.Marshal(dropped)
	}
	doc["captures"], _ = json.Marshal(caps)
}

// storeError answers a store failure: 404 for what is not there, 503 for
// the rest (logged).
func (s *Server) storeError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "%s: not found", what)
		return
	}
	s.log.Error(what, "err", err)
	writeError(w, http.StatusServiceUnavailable, "%s: the console's store failed: try again", what)
}

// timePtr is t in UTC, or nil for the zero time (JSON null: never).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// pemCert is a DER certificate in PEM.
func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
