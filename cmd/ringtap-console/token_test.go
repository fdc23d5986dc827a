package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
)

// runOK runs the command and returns its standard output.
func runOK(t *testing.T, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("%q: %v (%s)", args, err, errb.String())
	}
	return out.Bytes()
}

// mustInit runs `init --data dir --json` with args and returns what it
// printed.
func mustInit(t *testing.T, dir string, args ...string) initResult {
	t.Helper()
	var ir initResult
	if err := json.Unmarshal(runOK(t, append([]string{"init", "--data", dir, "--json"}, args...)...), &ir); err != nil {
		t.Fatalf("init printed no JSON: %v", err)
	}
	return ir
}

func runErr(t *testing.T, want string, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(args, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%q: %v, want an error saying %q", args, err, want)
	}
}

func mustListTokens(t *testing.T, dir string) []tokenView {
	t.Helper()
	var l struct {
		AdminTokens []tokenView `json:"admin_tokens"`
	}
	if err := json.Unmarshal(runOK(t, "token", "list", "--data", dir, "--json"), &l); err != nil {
		t.Fatal(err)
	}
	return l.AdminTokens
}

// The token commands rotate the admin token on a stopped console: create
// a successor, revoke the first; the last is never revoked, and the store
// checks exactly the tokens the commands left.
func TestTokenCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "console")
	first := mustInit(t, dir)
	l := mustListTokens(t, dir)
	if len(l) != 1 || l[0].Name != "init" || l[0].ID != store.HashSecret(first.AdminToken).ID() {
		t.Fatalf("tokens after init: %+v", l)
	}
	var second tokenCreated
	if err := json.Unmarshal(runOK(t, "token", "create", "--data", dir, "--name", "ci", "--json"), &second); err != nil {
		t.Fatal(err)
	}
	if !pki.ValidAdminToken(second.Token) || second.Name != "ci" || second.ID != store.HashSecret(second.Token).ID() {
		t.Fatalf("created %+v", second)
	}
	out := string(runOK(t, "token", "list", "--data", dir))
	if !strings.Contains(out, l[0].ID) || !strings.Contains(out, second.ID) || strings.Contains(out, second.Token) {
		t.Errorf("token list:\n%s", out)
	}

	runErr(t, "no admin token has id", "token", "revoke", "--data", dir, "000000000000")
	out = string(runOK(t, "token", "revoke", "--data", dir, l[0].ID))
	if !strings.Contains(out, "revoked") {
		t.Errorf("revoke said %q", out)
	}
	runErr(t, "is the last one: create its successor first", "token", "revoke", "--data", dir, second.ID)
	if l := mustListTokens(t, dir); len(l) != 1 || l[0].ID != second.ID {
		t.Errorf("tokens after the rotation: %+v", l)
	}

	st, err := console.OpenStore(context.Background(), dir, "", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CheckAdminToken(context.Background(), store.HashSecret(second.Token)); err != nil {
		t.Errorf("the created token: %v", err)
	}
	if err := st.CheckAdminToken(context.Background(), store.HashSecret(first.AdminToken)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked token: %v, want not found", err)
	}
	// A serving console holds the SQLite database: the commands say to
	// use its API instead.
	runErr(t, "manage tokens through its admin API", "token", "list", "--data", dir)
	st.Close()

	// A directory that is no console's is left alone.
	other := t.TempDir()
	runErr(t, "holds no console database", "token", "create", "--data", other, "--name", "x")
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("token create in a stranger directory left %v", ents)
	}
}

// TestTokenCommandsBesidePostgresConsole: with PostgreSQL the token
// commands work while a console serves the database, and the console
// takes each change with its next request: the created token is
// accepted, the revoked one refused.
func TestTokenCommandsBesidePostgresConsole(t *testing.T) {
	db := pgtest.Start(t)
	dir := filepath.Join(t.TempDir(), "console")
	first := mustInit(t, dir, "--db", db)
	sp := startServe(t, "--data", dir, "--db", db, "--agent-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	ca, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}}
	defer client.CloseIdleConnections()
	devices := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", sp.admin+"/api/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var second tokenCreated
	if err := json.Unmarshal(runOK(t, "token", "create", "--data", dir, "--db", db, "--name", "ops", "--json"), &second); err != nil {
		t.Fatal(err)
	}
	if code := devices(second.Token); code != http.StatusOK {
		t.Errorf("the serving console answered the created token %d, want 200", code)
	}
	runOK(t, "token", "revoke", "--data", dir, "--db", db, store.HashSecret(first.AdminToken).ID())
	if code := devices(first.AdminToken); code != http.StatusUnauthorized {
		t.Errorf("the serving console answered the revoked token %d, want 401", code)
	}
	if code := devices(second.Token); code != http.StatusOK {
		t.Errorf("the serving console answered the remaining token %d, want 200", code)
	}
}
