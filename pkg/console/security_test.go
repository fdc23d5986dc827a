package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// TestAgentAPIRefusals: each refused request gets its status and changes
// nothing in the store.
func TestAgentAPIRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		a := c.mustEnroll("a", "m-a")
		revoked := c.mustEnroll("r", "m-r")
		c.mustDo(http.StatusOK, "POST", "/api/v1/devices/"+revoked.m.DeviceID()+"/revoke", nil, nil)
		url := c.srv.AgentURL()
		hb := mustJSON(t, Heartbeat{AppliedGeneration: 0, Hostname: "a"})

		otherCA := mustCA(t)
		foreign := mustDeviceCert(t, otherCA, mustKey(t), a.m.DeviceID(), time.Now(), time.Hour)
		expired := mustDeviceCert(t, c.ca, mustKey(t), a.m.DeviceID(), time.Now().Add(-3*time.Hour), time.Hour)
		aCert := mustLoadAgentCert(t, a.dir)

		tests := []struct {
			name   string
			client *http.Client
			method string
			path   string
			body   []byte
			code   int // 0: the TLS handshake fails
		}{
			{"no certificate: config", pinnedClient(t, c.ca, nil), "GET", ConfigPath, nil, http.StatusUnauthorized},
			{"no certificate: heartbeat", pinnedClient(t, c.ca, nil), "POST", HeartbeatPath, hb, http.StatusUnauthorized},
			{"no certificate: renew", pinnedClient(t, c.ca, nil), "POST", certmgr.RenewPath, mustJSON(t, certmgr.RenewRequest{CSR: mustCSR(t, mustKey(t))}), http.StatusUnauthorized},
			{"certificate of another CA", pinnedClient(t, c.ca, foreign), "GET", ConfigPath, nil, 0},
			{"expired certificate", pinnedClient(t, c.ca, expired), "POST", HeartbeatPath, hb, 0},
			{"revoked device: config", revoked.client, "GET", ConfigPath, nil, http.StatusForbidden},
			{"revoked device: heartbeat", revoked.client, "POST", HeartbeatPath, hb, http.StatusForbidden},
			{"revoked device: renew", revoked.client, "POST", certmgr.RenewPath, mustJSON(t, certmgr.RenewRequest{CSR: mustCSR(t, mustKey(t))}), http.StatusForbidden},
			{"renewal CSR for another key", pinnedClient(t, c.ca, &aCert), "POST", certmgr.RenewPath, mustJSON(t, certmgr.RenewRequest{CSR: mustCSR(t, mustKey(t))}), http.StatusForbidden},
			{"renewal with a bad CSR", a.client, "POST", certmgr.RenewPath, mustJSON(t, certmgr.RenewRequest{CSR: "junk"}), http.StatusBadRequest},
			{"heartbeat: malformed", a.client, "POST", HeartbeatPath, []byte(`{"applied_generation":`), http.StatusBadRequest},
			{"heartbeat: unknown field", a.client, "POST", HeartbeatPath, []byte(`{"applied_generation":1,"device_id":"other"}`), http.StatusBadRequest},
			{"heartbeat: oversized", a.client, "POST", HeartbeatPath, []byte(`{"errors":["` + strings.Repeat("x", MaxBodySize) + `"]}`), http.StatusRequestEntityTooLarge},
			{"heartbeat: empty", a.client, "POST", HeartbeatPath, nil, http.StatusBadRequest},
			{"renew: unknown field", a.client, "POST", certmgr.RenewPath, []byte(`{"csr":"x","device_id":"y"}`), http.StatusBadRequest},
			{"config: bad after", a.client, "GET", ConfigPath + "?after=x", nil, http.StatusBadRequest},
			{"config: bad wait", a.client, "GET", ConfigPath + "?after=0&wait=soon", nil, http.StatusBadRequest},
			{"admin API on the agent listener", a.client, "GET", "/api/v1/devices", nil, http.StatusNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := mustSnapshot(t, c.st)
				code, body, err := agentDo(tc.client, url, tc.method, tc.path, tc.body)
				switch {
				case tc.code == 0 && err == nil:
					t.Fatalf("%d %s, want a failed handshake", code, body)
				case tc.code != 0 && err != nil:
					t.Fatal(err)
				case code != tc.code:
					t.Fatalf("%d %s, want %d", code, body, tc.code)
				}
				if tc.code != 0 {
					var eb errorBody
					if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
						t.Errorf("answer %s: want {\"error\": ...}", body)
					}
				}
				mustUnchanged(t, c.st, before)
			})
		}

		t.Run("certmgr renewal of a revoked device", func(t *testing.T) {
			before := mustSnapshot(t, c.st)
			err := revoked.m.Renew(context.Background())
			var apiErr *certmgr.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || !revoked.m.Status().NeedsReenroll {
				t.Errorf("renew: %v, want 403 and NeedsReenroll", err)
			}
			mustUnchanged(t, c.st, before)
		})
		t.Run("certmgr with an expired certificate", func(t *testing.T) {
			// The agent's clock is past its certificate: it presents none
			// and is answered 401.
			m, err := certmgr.New(a.dir, certmgr.Options{
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Now:    func() time.Time { return time.Now().Add(pki.DefaultClientValidity + time.Hour) },
			})
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: m.TLSConfig()}}
			defer client.CloseIdleConnections()
			before := mustSnapshot(t, c.st)
			code, body, err := agentDo(client, url, "GET", ConfigPath, nil)
			if err != nil || code != http.StatusUnauthorized {
				t.Errorf("%d %s %v, want 401", code, body, err)
			}
			mustUnchanged(t, c.st, before)
		})
	})
}

// TestEnrollmentRefusals: wrong CA pin, reused, expired, unknown and
// malformed install keys, bad CSRs; nothing changes.
func TestEnrollmentRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		used := c.mustInstallKey().Key
		first := c.mustEnrollWith(used, "first", "m-1")
		client := pinnedClient(t, c.ca, nil)
		url := c.srv.AgentURL()
		enroll := func(key, csr string) []byte {
			return mustJSON(t, certmgr.EnrollRequest{InstallKey: key, CSR: csr, Hostname: "h", MachineID: "m"})
		}
		unknown, _ := pki.NewInstallKey()

		t.Run("a client that pins another CA", func(t *testing.T) {
			before := mustSnapshot(t, c.st)
			_, err := certmgr.Enroll(context.Background(), certmgr.EnrollConfig{
				ConsoleURL: url, InstallKey: c.mustInstallKey().Key, CAFingerprint: mustCA(t).Fingerprint(),
				StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if !errors.Is(err, certmgr.ErrFingerprintMismatch) {
				t.Errorf("enroll: %v, want ErrFingerprintMismatch", err)
			}
			before.Keys = mustSnapshot(t, c.st).Keys // the key made above
			mustUnchanged(t, c.st, before)
		})

		expiring := c.mustInstallKey().Key // 1h
		tests := []struct {
			name    string
			body    []byte
			advance time.Duration
			code    int
		}{
			{"reused key, another CSR key", enroll(used, mustCSR(t, mustKey(t))), 0, http.StatusForbidden},
			{"expired key", enroll(expiring, mustCSR(t, mustKey(t))), 2 * time.Hour, http.StatusForbidden},
			{"unknown key", enroll(unknown, mustCSR(t, mustKey(t))), 0, http.StatusUnauthorized},
			{"malformed key", enroll("rtk_short", mustCSR(t, mustKey(t))), 0, http.StatusUnauthorized},
			{"admin token as key", enroll(c.token, mustCSR(t, mustKey(t))), 0, http.StatusUnauthorized},
			{"bad CSR", enroll(c.mustInstallKey().Key, "not a csr"), 0, http.StatusBadRequest},
			{"unknown field", []byte(`{"install_key":"x","csr":"y","device_id":"z"}`), 0, http.StatusBadRequest},
			{"malformed", []byte(`{"install_key":`), 0, http.StatusBadRequest},
			{"oversized", []byte(`{"hostname":"` + strings.Repeat("h", MaxBodySize) + `"}`), 0, http.StatusRequestEntityTooLarge},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c.clock.Advance(tc.advance)
				defer c.clock.Advance(-tc.advance)
				before := mustSnapshot(t, c.st)
				code, body, err := agentDo(client, url, "POST", certmgr.EnrollPath, tc.body)
				if err != nil {
					t.Fatal(err)
				}
				if code != tc.code {
					t.Fatalf("%d %s, want %d", code, body, tc.code)
				}
				mustUnchanged(t, c.st, before)
			})
		}

		t.Run("reused key through certmgr", func(t *testing.T) {
			before := mustSnapshot(t, c.st)
			_, err := certmgr.Enroll(context.Background(), certmgr.EnrollConfig{
				ConsoleURL: url, InstallKey: used, CAFingerprint: c.ca.Fingerprint(),
				StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			var apiErr *certmgr.APIError
			if !errors.As(err, &apiErr) || !apiErr.Refused() {
				t.Errorf("enroll: %v, want a refusal", err)
			}
			mustUnchanged(t, c.st, before)
		})
		_ = first
	})
}

// TestEnrollmentRetry: an enrollment retried with the same CSR key gets
// the same device and certificate, not a burnt key.
func TestEnrollmentRetry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		key := c.mustInstallKey().Key
		csr := mustCSR(t, mustKey(t))
		client := pinnedClient(t, c.ca, nil)
		body := mustJSON(t, certmgr.EnrollRequest{InstallKey: key, CSR: csr, Hostname: "h", MachineID: "m"})
		var answers []certmgr.EnrollResponse
		for range 2 {
			code, b, err := agentDo(client, c.srv.AgentURL(), "POST", certmgr.EnrollPath, body)
			if err != nil || code != http.StatusOK {
				t.Fatalf("enroll: %d %s %v", code, b, err)
			}
			var r certmgr.EnrollResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			answers = append(answers, r)
		}
		if answers[0] != answers[1] {
			t.Errorf("a retry got another enrollment:\n%+v\n%+v", answers[0], answers[1])
		}
		devs, _ := c.st.ListDevices(context.Background(), time.Now())
		if len(devs) != 1 {
			t.Errorf("%d devices after a retried enrollment, want 1", len(devs))
		}
		// Past the retry window the key is burnt.
		c.clock.Advance(store.EnrollRetryWindow + time.Minute)
		before := mustSnapshot(t, c.st)
		if code, b, _ := agentDo(client, c.srv.AgentURL(), "POST", certmgr.EnrollPath, body); code != http.StatusForbidden {
			t.Errorf("retry after the window: %d %s, want 403", code, b)
		}
		mustUnchanged(t, c.st, before)
	})
}

// TestAdminAuth: every admin endpoint refuses a request without a token
// or with a wrong one, and changes nothing.
func TestAdminAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		id := c.mustEnroll("h", "m").m.DeviceID()
		wrong, _ := pki.NewAdminToken()
		endpoints := []struct{ method, path, body string }{
			{"POST", "/api/v1/install-keys", `{"expires_in":"1h"}`},
			{"GET", "/api/v1/install-keys", ""},
			{"GET", "/api/v1/devices", ""},
			{"GET", "/api/v1/devices/" + id, ""},
			{"GET", "/api/v1/devices/" + id + "/captures", ""},
			{"PUT", "/api/v1/devices/" + id + "/captures", `{"captures":[]}`},
			{"POST", "/api/v1/devices/" + id + "/revoke", ""},
			{"GET", "/api/v1/devices/" + id + "/status", ""},
			{"GET", "/api/v1/nothing", ""},
		}
		tokens := []struct{ name, token string }{
			{"no token", ""},
			{"wrong token", wrong},
			{"malformed token", "hunter2"},
			{"install key as token", c.mustInstallKey().Key},
		}
		for _, tk := range tokens {
			for _, e := range endpoints {
				t.Run(tk.name+" "+e.method+" "+e.path, func(t *testing.T) {
					before := mustSnapshot(t, c.st)
					var body any
					if e.body != "" {
						body = e.body
					}
					code, got := c.doToken(tk.token, e.method, e.path, body, "If-Match", "0")
					if code != http.StatusUnauthorized {
						t.Fatalf("%d %s, want 401", code, got)
					}
					mustUnchanged(t, c.st, before)
				})
			}
		}
		t.Run("basic auth", func(t *testing.T) {
			code, _ := c.doToken("", "GET", "/api/v1/devices", nil, "Authorization", "Basic "+c.token)
			if code != http.StatusUnauthorized {
				t.Errorf("%d, want 401", code)
			}
		})
	})
}

// TestDeviceIsolation: a device's certificate only ever reaches its own
// config and status; no agent URL names a device.
func TestDeviceIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		a := c.mustEnroll("a", "m-a")
		bb := c.mustEnroll("b", "m-b")
		idA, idB := a.m.DeviceID(), bb.m.DeviceID()
		c.mustDo(http.StatusOK, "PUT", "/api/v1/devices/"+idA+"/captures", map[string]any{"captures": []store.Capture{webCapture("only-a")}}, nil, "If-Match", "0")
		c.mustDo(http.StatusOK, "PUT", "/api/v1/devices/"+idB+"/captures", map[string]any{"captures": []store.Capture{webCapture("only-b")}}, nil, "If-Match", "0")

		// Whatever the URL says, A's certificate gets A's config.
		for _, path := range []string{
			ConfigPath, ConfigPath + "?device=" + idB, ConfigPath + "?id=" + idB + "&device_id=" + idB,
		} {
			code, body := a.do("GET", path, nil)
			if code != http.StatusOK || !strings.Contains(string(body), "only-a") || strings.Contains(string(body), "only-b") {
				t.Errorf("GET %s with A's certificate: %d %s, want A's config", path, code, body)
			}
		}
		// No agent URL takes a device id.
		for _, path := range []string{
			ConfigPath + "/" + idB, "/api/v1/agent/devices/" + idB + "/config", "/api/v1/agent/" + idB + "/config",
			"/api/v1/devices/" + idB + "/captures", "/api/v1/devices/" + idB + "/status", HeartbeatPath + "/" + idB,
		} {
			for _, method := range []string{"GET", "POST", "PUT"} {
				before := mustSnapshot(t, c.st)
				code, body := a.do(method, path, []byte(`{"captures":[]}`))
				if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
					t.Errorf("%s %s with A's certificate: %d %s, want 404 or 405", method, path, code, body)
				}
				mustUnchanged(t, c.st, before)
			}
		}
		// A's heartbeat is A's status, whatever it claims.
		before := mustSnapshot(t, c.st)
		if code, body := a.do("POST", HeartbeatPath, mustJSON(t, Heartbeat{Hostname: "b", MachineID: "m-b", Errors: []string{"from a"}})); code != http.StatusNoContent {
			t.Fatalf("heartbeat: %d %s", code, body)
		}
		after := mustSnapshot(t, c.st)
		if after.Statuses[idB] != before.Statuses[idB] {
			t.Error("A's heartbeat changed B's status")
		}
		if !strings.Contains(after.Statuses[idA], "from a") {
			t.Errorf("A's status = %q", after.Statuses[idA])
		}
		if code, body := bb.do("GET", ConfigPath, nil); !strings.Contains(string(body), "only-b") || code != http.StatusOK {
			t.Errorf("B's config: %d %s", code, body)
		}
	})
}

// TestSecretsAtRest: install keys and admin tokens are not in the
// database; the agent's key and certificate files are 0600.
func TestSecretsAtRest(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(context.Background(), dir, "", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := mustConsole(t, st, nil)
	key := c.mustInstallKey().Key
	a := c.mustEnrollWith(key, "h", "m")
	st.Close()
	for _, name := range []string{DBFile, DBFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{key, c.token} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds a secret in clear", name)
			}
		}
	}
	for _, name := range []string{certmgr.KeyFile, certmgr.CertFile} {
		fi, err := os.Stat(filepath.Join(a.dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi.Mode().Perm(), err)
		}
	}
}
