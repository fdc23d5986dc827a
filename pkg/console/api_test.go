package console

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// webCapture is a valid capture.
func webCapture(name string) store.Capture {
	return store.Capture{Name: name, Interface: "eth0", Filter: "tcp port 80", Output: store.Output{Dir: "/var/lib/ringtap/captures/" + name}}
}

func TestEnrollAndManage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		key := c.mustInstallKey()
		wantCmd := "ringtap agent enroll --console " + c.srv.AgentURL() + " --key " + key.Key + " --ca-fingerprint " + c.ca.Fingerprint()
		if key.EnrollCommand != wantCmd {
			t.Errorf("enroll_command = %q, want %q", key.EnrollCommand, wantCmd)
		}
		a := c.mustEnrollWith(key.Key, "sensor-1", "m-1")
		id := a.m.DeviceID()

		var list struct{ Devices []deviceView }
		c.mustDo(http.StatusOK, "GET", "/api/v1/devices", nil, &list)
		if len(list.Devices) != 1 || list.Devices[0].ID != id || list.Devices[0].Hostname != "sensor-1" || list.Devices[0].State != store.StateStale {
			t.Fatalf("devices = %+v, want sensor-1 (%s), stale", list.Devices, id)
		}

		// The agent's config: generation 0, nothing to run.
		code, body := a.do("GET", ConfigPath, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `"generation":0`) {
			t.Fatalf("config: %d %s", code, body)
		}

		// The admin sets captures; the agent sees them.
		var cfg ConfigResponse
		c.mustDo(http.StatusOK, "GET", "/api/v1/devices/"+id+"/captures", nil, &cfg)
		put := map[string]any{"captures": []store.Capture{webCapture("web")}}
		c.mustDo(http.StatusOK, "PUT", "/api/v1/devices/"+id+"/captures", put, &cfg, "If-Match", "0")
		if cfg.Generation != 1 {
			t.Fatalf("generation after PUT = %d, want 1", cfg.Generation)
		}
		code, body = a.do("GET", ConfigPath+"?after=0", nil)
		var got ConfigResponse
		if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil {
			t.Fatalf("config: %d %s", code, body)
		}
		if d := cmp.Diff([]store.Capture{webCapture("web")}, got.Captures); d != "" || got.Generation != 1 {
			t.Errorf("agent's config generation %d (-want +got):\n%s", got.Generation, d)
		}

		// A heartbeat shows in the device and its status.
		hb := Heartbeat{AppliedGeneration: 1, Hostname: "sensor-1", AgentVersion: "v2", MachineID: "m-1", Interfaces: []string{"eth0", "eth1"},
			Captures: []agent.CaptureStatus{{Name: "web", Interface: "eth0", State: "running", Seen: 10, Captured: 9, RingDrops: 1, WriteDrops: 2}},
			Errors:   []string{"capture dns on eth1: failed: the kernel refused the filter"}, Certificate: &HeartbeatCertificate{NeedsReenroll: true}}
		if code, body := a.do("POST", HeartbeatPath, mustJSON(t, hb)); code != http.StatusNoContent {
			t.Fatalf("heartbeat: %d %s", code, body)
		}
		var dv deviceView
		c.mustDo(http.StatusOK, "GET", "/api/v1/devices/"+id, nil, &dv)
		if dv.State != store.StateOnline || dv.CapturesRunning != 1 || dv.CapturesTotal != 1 || dv.Drops != 3 || dv.AgentVersion != "v2" ||
			dv.AppliedGeneration != 1 || dv.Generation != 1 || dv.LastHeartbeat == nil || !cmp.Equal(dv.Interfaces, []string{"eth0", "eth1"}) {
			t.Errorf("device after heartbeat = %+v", dv)
		}
		if dv.Errors != 1 || !cmp.Equal(dv.ErrorTexts, hb.Errors) || !dv.NeedsReenroll ||
			!cmp.Equal(dv.CaptureStates, []captureState{{Name: "web", State: "running"}}) {
			t.Errorf("device's heartbeat summary: errors %d %q, needs_reenroll %v, capture states %+v", dv.Errors, dv.ErrorTexts, dv.NeedsReenroll, dv.CaptureStates)
		}
		var status map[string]any
		c.mustDo(http.StatusOK, "GET", "/api/v1/devices/"+id+"/status", nil, &status)
		if status["received_at"] == nil || status["applied_generation"] != 1.0 || status["generation"] != 1.0 {
			t.Errorf("status = %v", status)
		}
		caps, _ := status["captures"].([]any)
		if len(caps) != 1 || caps[0].(map[string]any)["seen"] != 10.0 || caps[0].(map[string]any)["captured"] != 9.0 ||
			caps[0].(map[string]any)["dropped"] != 3.0 || caps[0].(map[string]any)["state"] != "running" {
			t.Errorf("status captures = %v, want seen 10, captured 9, dropped 3 (ring 1 + write 2), running", status["captures"])
		}
		if ifs, _ := status["interfaces"].([]any); len(ifs) != 2 {
			t.Errorf("status interfaces = %v", status["interfaces"])
		}
		if _, ok := status["errors"].([]any); !ok {
			t.Errorf("status errors = %v, want a list", status["errors"])
		}

		// Renewal with certmgr: a new certificate, recorded.
		before := a.m.Certificate()
		if err := a.m.Renew(context.Background()); err != nil {
			t.Fatalf("renew: %v", err)
		}
		after := a.m.Certificate()
		if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
			t.Fatal("renewal kept the serial")
		}
		c.mustDo(http.StatusOK, "GET", "/api/v1/devices/"+id, nil, &dv)
		if dv.CertSerial != serialOf(after) {
			t.Errorf("device's certificate %s, want the renewed %s", dv.CertSerial, serialOf(after))
		}

		// Revocation: the device is revoked; its agent is refused.
		c.mustDo(http.StatusOK, "POST", "/api/v1/devices/"+id+"/revoke", nil, &dv)
		if dv.State != store.StateRevoked || dv.RevokedAt == nil {
			t.Errorf("revoked device = %+v", dv)
		}
	})
}

func TestStatusBeforeHeartbeat(t *testing.T) {
	c := mustConsole(t, backends[0].open(t), nil)
	a := c.mustEnroll("h", "m")
	code, body := c.do("GET", "/api/v1/devices/"+a.m.DeviceID()+"/status", nil)
	if code != http.StatusNotFound {
		t.Errorf("status before a heartbeat: %d %s, want 404", code, body)
	}
	if code, body := c.do("GET", "/api/v1/devices/nosuchdevice", nil); code != http.StatusNotFound {
		t.Errorf("unknown device: %d %s, want 404", code, body)
	}
}

func TestDuplicateMachineID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		a1 := c.mustEnroll("clone-1", "same-machine")
		a2 := c.mustEnroll("clone-2", "same-machine")
		c.mustEnroll("other", "other-machine")
		if a1.m.DeviceID() == a2.m.DeviceID() {
			t.Fatal("two agents with one machine id got one device")
		}
		var list struct{ Devices []deviceView }
		c.mustDo(http.StatusOK, "GET", "/api/v1/devices", nil, &list)
		dup := map[string]bool{}
		for _, d := range list.Devices {
			dup[d.Hostname] = d.DuplicateMachineID
		}
		if d := cmp.Diff(map[string]bool{"clone-1": true, "clone-2": true, "other": false}, dup); d != "" {
			t.Errorf("duplicate_machine_id (-want +got):\n%s", d)
		}
	})
}

func TestPutCaptures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		id := c.mustEnroll("h", "m").m.DeviceID()
		path := "/api/v1/devices/" + id + "/captures"
		good := map[string]any{"captures": []store.Capture{webCapture("web")}}
		c.mustDo(http.StatusOK, "PUT", path, good, nil, "If-Match", "0")

		tests := []struct {
			name    string
			body    any
			ifMatch string
			code    int
			errors  []string // prefixes
		}{
			{name: "no If-Match", body: good, code: http.StatusPreconditionRequired},
			{name: "stale If-Match", body: good, ifMatch: "0", code: http.StatusConflict},
			{name: "bad If-Match", body: good, ifMatch: "one", code: http.StatusBadRequest},
			{name: "bad filter", ifMatch: "1", code: http.StatusUnprocessableEntity,
				body:   map[string]any{"captures": []store.Capture{{Name: "bad", Interface: "eth0", Filter: "tcp port", Output: store.Output{Dir: "/tmp/x"}}}},
				errors: []string{"captures[0].filter: "}},
			{name: "two problems", ifMatch: "1", code: http.StatusUnprocessableEntity,
				body: map[string]any{"captures": []store.Capture{
					{Name: "a", Interface: "eth0", Filter: "nonsense here", Output: store.Output{Dir: "/tmp/a"}},
					{Name: "b", Interface: "eth0", SnapLen: 999999, Output: store.Output{Dir: "/tmp/b"}},
				}},
				errors: []string{"captures[0].filter: ", "captures[1].snaplen: "}},
			{name: "postrotate", ifMatch: "1", code: http.StatusUnprocessableEntity,
				body:   map[string]any{"captures": []store.Capture{{Name: "pr", Interface: "eth0", Output: store.Output{Dir: "/tmp/pr", Postrotate: "/bin/true"}}}},
				errors: []string{"captures[0].output.postrotate: a config from the console cannot run commands on the sensor"}},
			{name: "no captures key", body: map[string]any{}, ifMatch: "1", code: http.StatusBadRequest},
			{name: "unknown field", body: `{"captures":[],"device":"x"}`, ifMatch: "1", code: http.StatusBadRequest},
			{name: "unknown capture field", body: `{"captures":[{"name":"a","interface":"eth0","output":{"dir":"/tmp"},"colour":"red"}]}`, ifMatch: "1", code: http.StatusBadRequest},
			{name: "malformed", body: `{"captures":[`, ifMatch: "1", code: http.StatusBadRequest},
			{name: "not an object", body: `[]`, ifMatch: "1", code: http.StatusBadRequest},
			{name: "trailing data", body: `{"captures":[]} {}`, ifMatch: "1", code: http.StatusBadRequest},
			{name: "oversized", body: `{"captures":[],"x":"` + strings.Repeat("a", MaxBodySize) + `"}`, ifMatch: "1", code: http.StatusRequestEntityTooLarge},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := mustSnapshot(t, c.st)
				var hdr []string
				if tc.ifMatch != "" {
					hdr = []string{"If-Match", tc.ifMatch}
				}
				code, body := c.do("PUT", path, tc.body, hdr...)
				if code != tc.code {
					t.Fatalf("%d %s, want %d", code, body, tc.code)
				}
				var eb errorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
					t.Fatalf("answer %s: want {\"error\": ...}", body)
				}
				if len(eb.Errors) != len(tc.errors) {
					t.Fatalf("errors = %q, want %d starting %q", eb.Errors, len(tc.errors), tc.errors)
				}
				for i, p := range tc.errors {
					if !strings.HasPrefix(eb.Errors[i], p) {
						t.Errorf("errors[%d] = %q, want it to start with %q", i, eb.Errors[i], p)
					}
				}
				mustUnchanged(t, c.st, before)
			})
		}

		// The generation read back with the captures works as the body.
		var cfg ConfigResponse
		c.mustDo(http.StatusOK, "GET", path, nil, &cfg)
		cfg.Captures = append(cfg.Captures, webCapture("web2"))
		c.mustDo(http.StatusOK, "PUT", path, cfg, &cfg, "If-Match", `"1"`)
		if cfg.Generation != 2 || len(cfg.Captures) != 2 {
			t.Errorf("after a second PUT: generation %d, %d captures", cfg.Generation, len(cfg.Captures))
		}
		// An empty list is valid: the device runs nothing.
		c.mustDo(http.StatusOK, "PUT", path, map[string]any{"captures": []store.Capture{}}, &cfg, "If-Match", "2")
		if cfg.Generation != 3 || cfg.Captures == nil || len(cfg.Captures) != 0 {
			t.Errorf("after emptying: %+v", cfg)
		}
	})
}

func TestInstallKeyRequests(t *testing.T) {
	c := mustConsole(t, backends[0].open(t), nil)
	tests := []struct {
		name string
		body any
		code int
	}{
		{"defaults", nil, http.StatusCreated},
		{"expiry and note", map[string]string{"expires_in": "2h", "note": "rack B"}, http.StatusCreated},
		{"bad expiry", map[string]string{"expires_in": "forever"}, http.StatusBadRequest},
		{"too long", map[string]string{"expires_in": "10000h"}, http.StatusBadRequest},
		{"unknown field", `{"expires":"1h"}`, http.StatusBadRequest},
		{"malformed", `{"note":`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := mustSnapshot(t, c.st)
			code, body := c.do("POST", "/api/v1/install-keys", tc.body)
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
			if code != http.StatusCreated {
				mustUnchanged(t, c.st, before)
				return
			}
			var k installKeyResponse
			if err := json.Unmarshal(body, &k); err != nil || !strings.HasPrefix(k.Key, "rtk_") || time.Until(k.ExpiresAt) <= 0 {
				t.Errorf("answer %s", body)
			}
		})
	}
	var keys struct {
		InstallKeys []installKeyView `json:"install_keys"`
	}
	c.mustDo(http.StatusOK, "GET", "/api/v1/install-keys", nil, &keys)
	if len(keys.InstallKeys) != 2 || keys.InstallKeys[0].State != "unused" {
		t.Errorf("install keys = %+v", keys.InstallKeys)
	}
}

func TestWebPage(t *testing.T) {
	c := mustConsole(t, backends[0].open(t), nil)
	resp, err := c.admin.Get(c.srv.AdminURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
