package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console"
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

// serveProc is `ringtap-console serve` running as a process.
type serveProc struct {
	cmd                   *exec.Cmd
	lines                 *bufio.Scanner // the rest of its standard output
	stderr                *bytes.Buffer
	admin, agent, metrics string // the URLs it printed (metrics: "" without --metrics-listen)
}

// startServe starts `ringtap-console serve ARGS` (the test binary as the
// command) and reads the URLs it prints; the test's cleanup kills it.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "RINGTAP_CONSOLE_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sp := &serveProc{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = sp.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sp.lines = bufio.NewScanner(stdout)
	for (sp.admin == "" || sp.agent == "") && sp.lines.Scan() {
		f := strings.Fields(sp.lines.Text())
		switch {
		case len(f) >= 3 && f[0] == "admin":
			sp.admin = f[2]
		case len(f) >= 3 && f[0] == "agent":
			sp.agent = strings.TrimSuffix(f[len(f)-1], ")")
		}
	}
	if sp.admin == "" || sp.agent == "" {
		t.Fatalf("serve printed no addresses; stderr:\n%s", sp.stderr.String())
	}
	// The metrics line follows the admin line when there is one.
	for _, a := range args {
		if a == "--metrics-listen" && sp.lines.Scan() {
			if f := strings.Fields(sp.lines.Text()); len(f) == 2 && f[0] == "metrics" {
				sp.metrics = f[1]
			}
		}
	}
	return sp
}

// TestServe runs `ringtap-console serve` as a process: it serves the
// admin API with the token init printed, and the first SIGTERM stops it
// cleanly.
func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "console")
	ir := mustInit(t, dir)
	sp := startServe(t, "--data", dir, "--agent-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0", "--job-max-duration", "30s", "--job-max-bytes", "10MiB", "--job-silence", "10s")
	cmd, lines, stderr := sp.cmd, sp.lines, sp.stderr
	adminURL, agentURL, metricsURL := sp.admin, sp.agent, sp.metrics
	if metricsURL == "" {
		t.Fatalf("serve printed no metrics address; stderr:\n%s", stderr.String())
	}
	// --metrics-listen serves the console's metrics.
	if resp, err := http.Get(metricsURL); err != nil {
		t.Errorf("GET %s: %v", metricsURL, err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "\nringtap_console_store_up 1\n") {
			t.Errorf("GET %s: %d\n%s", metricsURL, resp.StatusCode, b)
		}
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

	// The job policy of the flags: a job above it is refused, naming the
	// flag.
	for body, want := range map[string]string{
		`{"devices": ["x"], "interfaces": ["eth0"], "duration": "1m"}`:      "duration 1m is above the console's limit 30s (--job-max-duration)",
		`{"devices": ["x"], "interfaces": ["eth0"], "max_bytes": 20971520}`: "max_bytes 20MiB is above the console's limit 10MiB (--job-max-bytes)",
	} {
		req, _ = http.NewRequest("POST", adminURL+"/api/v1/jobs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ir.AdminToken)
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(eb.Error, want) {
			t.Errorf("POST /api/v1/jobs %s: %d %q, want 400 %q", body, resp.StatusCode, eb.Error, want)
		}
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

func TestServeJobFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad --job-max-bytes", []string{"--job-max-bytes", "lots"}, `--job-max-bytes "lots": give a size such as 1GiB or 500MB`},
		{"tiny --job-max-bytes", []string{"--job-max-bytes", "1KB"}, "--job-max-bytes 1KB is below 1MiB"},
		{"zero --job-max-duration", []string{"--job-max-duration", "0s"}, "--job-max-duration 0s: give 1s or more"},
		{"zero --job-max-expiry", []string{"--job-max-expiry", "0s"}, "--job-max-expiry 0s: give 1s or more"},
		{"short --job-silence", []string{"--job-silence", "100ms"}, "--job-silence 100ms: give 1s or more"},
		{"bad --job-max-packets", []string{"--job-max-packets", "-1"}, "job-max-packets"},
		{"short --job-retention", []string{"--job-retention", "10s"}, "--job-retention 10s: give 1m or more"},
		{"negative --job-retention", []string{"--job-retention", "-1h"}, "--job-retention -1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(append([]string{"serve", "--data", "/nonexistent"}, tc.args...), &out, &errb)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve %q: %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}

	got, err := jobPolicy(2*time.Hour, "2GiB", 5000, 48*time.Hour, time.Minute, 240*time.Hour)
	want := console.JobPolicy{MaxDuration: 2 * time.Hour, MaxBytes: 2 << 30, MaxPackets: 5000, MaxExpiry: 48 * time.Hour, Silence: time.Minute, Retention: 240 * time.Hour}
	if err != nil || got != want {
		t.Errorf("jobPolicy = %+v, %v; want %+v", got, err, want)
	}

	// The flags and their defaults are in the help.
	var out, errb bytes.Buffer
	if err := run([]string{"serve", "--help"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"-job-max-duration duration", "(default 1h0m0s)", "-job-max-bytes string", `(default "1GiB")`,
		"-job-max-packets uint", "-job-max-expiry duration", "(default 24h0m0s)", "-job-silence duration", "(default 2m0s)", "-job-retention duration", "(default 720h0m0s)", "DIR/jobs/<job id>/<device id>.pcapng"} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("serve --help lacks %q:\n%s", s, errb.String())
		}
	}
}
