package agent

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHTTPExtra: ExtraReady turns /readyz red with its reason, and
// ExtraStatus adds top-level keys to /status.json without replacing the
// agent's own.
func TestHTTPExtra(t *testing.T) {
	var certOK atomic.Bool
	certOK.Store(true)
	type cert struct {
		NotAfter      string `json:"not_after"`
		NeedsReenroll bool   `json:"needs_reenroll"`
	}
	_, base, client, _ := mustServe(t, HTTPOptions{
		Version: "v9",
		ExtraReady: []func() (bool, string){func() (bool, string) {
			if certOK.Load() {
				return true, ""
			}
			return false, "client certificate expired:\nrun ringtap agent enroll"
		}},
		ExtraStatus: map[string]func() any{
			"certificate": func() any { return cert{NotAfter: "2026-01-01T00:00:00Z", NeedsReenroll: !certOK.Load()} },
			"version":     func() any { return "not mine" },
		},
	}, nil)

	if code, body := mustGet(t, client, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with a good certificate: %d %s", code, body)
	}
	certOK.Store(false)
	code, body := mustGet(t, client, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with an expired certificate: %d %s, want 503", code, body)
	}
	if want := "client certificate expired:\nrun ringtap agent enroll\n"; body != want {
		t.Errorf("/readyz body = %q, want %q", body, want)
	}

	code, body = mustGet(t, client, base+"/status.json")
	if code != http.StatusOK {
		t.Fatalf("/status.json: %d %s", code, body)
	}
	var got struct {
		Status
		Certificate cert `json:"certificate"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode /status.json: %v\n%s", err, body)
	}
	if diff := cmp.Diff(cert{NotAfter: "2026-01-01T00:00:00Z", NeedsReenroll: true}, got.Certificate); diff != "" {
		t.Errorf("/status.json certificate (-want +got):\n%s", diff)
	}
	if got.Version != "v9" {
		t.Errorf("/status.json version = %q: an extra key replaced the agent's own", got.Version)
	}
	if !strings.Contains(body, `"captures": []`) {
		t.Errorf("/status.json lacks an empty captures list:\n%s", body)
	}
}
