package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/web"
)

// TestMain runs the command itself when the test binary is started as
// ringtap-console (by TestServe).
func TestMain(m *testing.M) {
	if os.Getenv("RINGTAP_CONSOLE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServe runs `ringtap-console serve` as a process: it serves the
// admin API with the token init printed, and the first SIGTERM stops it
// cleanly.
func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "console")
	var out, errb bytes.Buffer
	if err := run([]string{"init", "--data", dir, "--json"}, &out, &errb); err != nil {
		t.Fatalf("init: %v", err)
	}
	var ir initResult
	if err := json.Unmarshal(out.Bytes(), &ir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--data", dir, "--agent-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "RINGTAP_CONSOLE_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	var adminURL, agentURL string
	for (adminURL == "" || agentURL == "") && lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) >= 3 && f[0] == "admin":
			adminURL = f[2]
		case len(f) >= 3 && f[0] == "agent":
			agentURL = strings.TrimSuffix(f[len(f)-1], ")")
		}
	}
	if adminURL == "" || agentURL == "" {
		t.Fatalf("serve printed no addresses; stderr:\n%s", stderr.String())
	}
	ca, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest("POST", adminURL+"/api/v1/install-keys", strings.NewReader(`{"expires_in":"1h"}`))
	req.Header.Set("Authorization", "Bearer "+ir.AdminToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Key           string `json:"key"`
		EnrollCommand string `json:"enroll_command"`
	}
	err = json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create install key: %d %v", resp.StatusCode, err)
	}
	if want := "--console " + agentURL + " --key " + k.Key + " --ca-fingerprint " + ir.CAFingerprint; !strings.Contains(k.EnrollCommand, want) {
		t.Errorf("enroll_command %q, want it to contain %q", k.EnrollCommand, want)
	}

	// The web page is built in.
	resp, err = client.Get(adminURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != web.ContentSecurityPolicy || strings.Contains(string(page), "not built into this binary") {
		t.Errorf("GET /: %d, CSP %q: want the embedded web page", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}
