package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringtap/ringtap/pkg/console/pki"
)

func TestInitJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "console")
	var out, errb bytes.Buffer
	if err := run([]string{"init", "--data", dir, "--json"}, &out, &errb); err != nil {
		t.Fatalf("init: %v (%s)", err, errb.String())
	}
	var got initResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("init --json printed %q: %v", out.String(), err)
	}
	if !pki.ValidAdminToken(got.AdminToken) {
		t.Errorf("admin_token %q is not an admin token", got.AdminToken)
	}
	ca, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.CAFingerprint != ca.Fingerprint() {
		t.Errorf("ca_fingerprint %q, want %q", got.CAFingerprint, ca.Fingerprint())
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	for _, name := range []string{pki.CAKeyFile, "console.db"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", name, fi.Mode().Perm(), err)
		}
	}
	// The token is stored only as a hash.
	db, err := os.ReadFile(filepath.Join(dir, "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(got.AdminToken)) {
		t.Error("the database holds the admin token in clear")
	}

	err = run([]string{"init", "--data", dir}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "already holds a console CA") {
		t.Errorf("second init: %v, want a refusal", err)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"init without --data", []string{"init"}},
		{"serve without --data", []string{"serve"}},
		{"bad --db", []string{"serve", "--data", "/nonexistent", "--db", "mysql://x"}},
		{"bad --log-level", []string{"serve", "--data", "/nonexistent", "--log-level", "loud"}},
		{"empty --hosts", []string{"serve", "--data", "/nonexistent", "--hosts", ","}},
		{"bad --job-results-max-bytes", []string{"serve", "--data", "/nonexistent", "--job-results-max-bytes", "lots"}},
		{"tiny --job-results-max-bytes", []string{"serve", "--data", "/nonexistent", "--job-results-max-bytes", "10KB"}},
		{"--job-results-min-free of 100%", []string{"serve", "--data", "/nonexistent", "--job-results-min-free", "100%"}},
		{"--pprof without --metrics-listen", []string{"serve", "--data", "/nonexistent", "--pprof"}},
		{"token without a command", []string{"token"}},
		{"token unknown command", []string{"token", "rotate"}},
		{"token create without --name", []string{"token", "create", "--data", "/nonexistent"}},
		{"token create with a control character", []string{"token", "create", "--data", "/nonexistent", "--name", "a\tb"}},
		{"token list with --name", []string{"token", "list", "--data", "/nonexistent", "--name", "x"}},
		{"token revoke without an id", []string{"token", "revoke", "--data", "/nonexistent"}},
		{"token list without --data", []string{"token", "list"}},
		{"token list bad --db", []string{"token", "list", "--data", "/nonexistent", "--db", "mysql://x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := run(tc.args, &out, &errb); !errors.Is(err, errUsage) {
				t.Errorf("run(%q) = %v, want a usage error", tc.args, err)
			}
		})
	}
}

func TestServeUninitialized(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"serve", "--data", t.TempDir()}, &out, &errb)
	if !errors.Is(err, pki.ErrNotInitialized) {
		t.Errorf("serve on an empty directory: %v, want ErrNotInitialized", err)
	}
}
