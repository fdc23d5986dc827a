package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/livestream"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// skipJobInKernelMatrix skips tests that run a console in the kernel
// matrix's guests, as cmd/ringtap's tests do: the host runs them.
func skipJobInKernelMatrix(t *testing.T) {
	t.Helper()
	if os.Getenv("RINGTAP_KERNEL_MATRIX") != "" {
		t.Skip("kernel matrix: the job command's tests run a console; make test runs them on the host")
	}
}

// clearJobEnv unsets the job command's environment variables for the
// test.
func clearJobEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{envConsole, envToken, envFingerprint} {
		t.Setenv(k, "")
	}
}

// TestJobUsage: mistakes on the command line are usage errors (exit 2),
// found before any connection.
func TestJobUsage(t *testing.T) {
	clearJobEnv(t)
	token, _ := pki.NewAdminToken()
	fp := "sha256:" + strings.Repeat("ab", 32)
	conn := []string{"--console", "https://127.0.0.1:1", "--token", token, "--ca-fingerprint", fp}
	with := func(args ...string) []string { return append(append([]string{"job", "run"}, conn...), args...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no job command", []string{"job"}, "no job command given"},
		{"unknown job command", []string{"job", "frobnicate"}, `unknown job command "frobnicate"`},
		{"no console", []string{"job", "run", "--device", "d"}, "--console is required"},
		{"console not https", []string{"job", "run", "--console", "http://c:8444", "--token", token, "--ca-fingerprint", fp, "--device", "d"}, "is not an https URL"},
		{"no token", []string{"job", "run", "--console", "https://c:8444", "--ca-fingerprint", fp, "--device", "d"}, "--token is required"},
		{"not a token", []string{"job", "run", "--console", "https://c:8444", "--token", "secret", "--ca-fingerprint", fp, "--device", "d"}, "not an admin token"},
		{"no fingerprint", []string{"job", "run", "--console", "https://c:8444", "--token", token, "--device", "d"}, "--ca-fingerprint is required"},
		{"bad fingerprint", []string{"job", "run", "--console", "https://c:8444", "--token", token, "--ca-fingerprint", "sha256:12", "--device", "d"}, "--ca-fingerprint"},
		{"no device", with("--interface", "eth0"), "--device is required"},
		{"bad duration", with("--device", "d", "--duration", "soon"), `--duration "soon" is not a duration`},
		{"negative duration", with("--device", "d", "--duration", "-5s"), "is not a duration"},
		{"bad max-bytes", with("--device", "d", "--max-bytes", "lots"), `--max-bytes "lots" is not a size`},
		{"bad expires-in", with("--device", "d", "--expires-in", "1 day"), "--expires-in"},
		{"unknown flag", with("--device", "d", "--colour"), "flag provided but not defined"},
		{"flag after the expression", with("--device", "d", "udp", "-w", "x.pcapng"), "-w comes after the filter expression"},
		{"show without id", append([]string{"job", "show"}, conn...), "no job id given"},
		{"show bad id", append([]string{"job", "show", "forty-two"}, conn...), `"forty-two" is not a job id`},
		{"cancel two ids", append([]string{"job", "cancel", "1", "2"}, conn...), `unexpected argument "2"`},
		{"list bad limit", append([]string{"job", "list", "--limit", "0"}, conn...), "--limit 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(tc.args, &out, &errb)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
	// The environment stands in for the flags.
	t.Setenv(envConsole, "https://127.0.0.1:1")
	t.Setenv(envToken, token)
	t.Setenv(envFingerprint, fp)
	var out, errb bytes.Buffer
	if err := run([]string{"job", "run", "--duration", "5s"}, &out, &errb); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--device is required") {
		t.Errorf("job run with the environment's console and no --device: %v, want the --device usage error", err)
	}
	// -h is no error, and names -w.
	errb.Reset()
	if err := run([]string{"job", "run", "-h"}, &out, &errb); err != nil || !strings.Contains(errb.String(), "-w FILE") {
		t.Errorf("job run -h: %v, printed %q", err, errb.String())
	}
}

// jobConsole is a console served in the test, initialized as
// `ringtap-console init` does.
type jobConsole struct {
	t           *testing.T
	dir         string
	srv         *console.Server
	token       string
	fingerprint string
	ca          *pki.CA
	admin       *http.Client
}

func mustJobConsole(t *testing.T) *jobConsole {
	t.Helper()
	skipJobInKernelMatrix(t)
	clearJobEnv(t)
	dir := filepath.Join(t.TempDir(), "console")
	ir := mustInit(t, dir)
	ca, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := console.OpenStore(context.Background(), dir, "", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := console.New(console.Config{
		Store: st, CA: ca, DataDir: dir,
		AgentListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v", err)
		}
	})
	c := &jobConsole{t: t, dir: dir, srv: srv, token: ir.AdminToken, fingerprint: ir.CAFingerprint, ca: ca,
		admin: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}}}
	t.Cleanup(c.admin.CloseIdleConnections)
	return c
}

// args are the flags that reach this console.
func (c *jobConsole) args() []string {
	return []string{"--console", c.srv.AdminURL(), "--token", c.token, "--ca-fingerprint", c.fingerprint}
}

// mustAdmin sends a request to the admin API and decodes its answer.
func (c *jobConsole) mustAdmin(method, path string, body, out any, want int) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.srv.AdminURL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.admin.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatal(err)
		}
	}
}

// fakeAgent is an enrolled device whose agent the test plays, through
// the agent API.
type fakeAgent struct {
	t      *testing.T
	id     string
	url    string
	client *http.Client
}

// mustEnroll enrolls a device with certmgr, as `ringtap agent enroll`
// does.
func (c *jobConsole) mustEnroll(hostname string) *fakeAgent {
	c.t.Helper()
	var key struct {
		Key string `json:"key"`
	}
	c.mustAdmin("POST", "/api/v1/install-keys", map[string]string{"expires_in": "1h"}, &key, http.StatusCreated)
	dir := filepath.Join(c.t.TempDir(), "agent")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := certmgr.Enroll(ctx, certmgr.EnrollConfig{
		ConsoleURL: c.srv.AgentURL(), InstallKey: key.Key, CAFingerprint: c.fingerprint, StateDir: dir,
		Hostname: hostname, MachineID: hostname + "-" + strconv.Itoa(len(dir)), AgentVersion: "test", Interfaces: []string{"eth0", "eth1"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		c.t.Fatalf("enroll: %v", err)
	}
	m, err := certmgr.New(dir, certmgr.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	a := &fakeAgent{t: c.t, id: e.DeviceID, url: m.ConsoleURL(), client: &http.Client{Transport: &http.Transport{TLSClientConfig: m.TLSConfig()}}}
	c.t.Cleanup(a.client.CloseIdleConnections)
	return a
}

// call sends a request to the agent API; a non-nil out gets the JSON
// answer.
func (a *fakeAgent) call(method, path string, body io.Reader, out any, hdr ...string) (int, error) {
	req, err := http.NewRequest(method, a.url+path, body)
	if err != nil {
		return 0, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %s: %w", method, path, raw, err)
		}
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, nil
}

func (a *fakeAgent) post(path string, v, out any) error {
	b, _ := json.Marshal(v)
	_, err := a.call("POST", path, bytes.NewReader(b), out, "Content-Type", "application/json")
	return err
}

// waitJob long-polls until the device has a run, and returns its job.
func (a *fakeAgent) waitJob(ctx context.Context) (jobapi.AgentJob, error) {
	for ctx.Err() == nil {
		var cr struct {
			Jobs []jobapi.AgentJob `json:"jobs"`
		}
		code, err := a.call("GET", console.ConfigPath+"?after=0&jobs=0&wait=2s", nil, &cr)
		if code == http.StatusOK && len(cr.Jobs) > 0 {
			return cr.Jobs[0], nil
		}
		if err != nil && code != http.StatusNotModified {
			return jobapi.AgentJob{}, err
		}
	}
	return jobapi.AgentJob{}, ctx.Err()
}

// agentScript is how the fake agent plays a run.
type agentScript struct {
	packets int
	// finish is the terminal state; a run canceled by an admin ends
	// canceled whatever it says.
	finish, reason string
	// untilCancel keeps the run going until its cancel is requested.
	untilCancel bool
}

// play plays one run as the agent's job runner does: claim, running,
// the live push when wanted, the upload, the finish. It returns the
// result file it uploaded.
func (a *fakeAgent) play(ctx context.Context, s agentScript) ([]byte, error) {
	j, err := a.waitJob(ctx)
	if err != nil {
		return nil, err
	}
	claim := hex.EncodeToString([]byte(strconv.FormatInt(time.Now().UnixNano(), 10)))[:32]
	if err := a.post(jobapi.Path(jobapi.ClaimPath, j.ID), jobapi.ClaimRequest{Claim: claim}, nil); err != nil {
		return nil, err
	}
	var rc jobapi.RunControl
	for !rc.LiveWanted {
		if err := a.post(jobapi.Path(jobapi.ProgressPath, j.ID), jobapi.ProgressRequest{Claim: claim, State: "running"}, &rc); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	ifaces := []pcapio.Interface{{Name: "eth0", LinkType: 1}}
	var packets []pcapio.Packet
	for i := range s.packets {
		data := bytes.Repeat([]byte{byte(i)}, 100+i%50)
		packets = append(packets, pcapio.Packet{Timestamp: time.Now().UnixNano() + int64(i), WireLen: uint32(len(data)), Data: data})
	}
	enc := livestream.NewEncoder(ifaces, livestream.EncoderOptions{Application: "fake agent"})
	pr, pw := io.Pipe()
	go func() { _, err := enc.WriteTo(pw); pw.CloseWithError(err) }()
	pushed := make(chan error, 1)
	go func() {
		_, err := a.call("POST", jobapi.Path(jobapi.LivePath, j.ID), pr, nil, "Content-Type", "application/x-pcapng")
		pushed <- err
	}()
	for i := range packets {
		enc.WritePacket(&packets[i])
	}
	var sent jobapi.Progress
	sent.Packets = uint64(len(packets))
	for _, p := range packets {
		sent.Bytes += uint64(len(p.Data))
	}
	for s.untilCancel && !rc.CancelRequested {
		if err := a.post(jobapi.Path(jobapi.ProgressPath, j.ID), jobapi.ProgressRequest{Claim: claim, Progress: sent}, &rc); err != nil {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	enc.Close()
	if err := <-pushed; err != nil {
		return nil, fmt.Errorf("live push: %w", err)
	}

	var file bytes.Buffer
	w, err := pcapio.NewWriter(&file, pcapio.WriterOptions{Interfaces: ifaces, Application: "fake agent"})
	if err != nil {
		return nil, err
	}
	for i := range packets {
		w.WritePacket(&packets[i])
	}
	w.Flush()
	sent.Size = uint64(file.Len())
	if err := a.post(jobapi.Path(jobapi.ProgressPath, j.ID), jobapi.ProgressRequest{Claim: claim, State: "uploading", Progress: sent}, &rc); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(file.Bytes())
	if _, err := a.call("PATCH", jobapi.Path(jobapi.PcapPath, j.ID), bytes.NewReader(file.Bytes()), nil,
		"Content-Type", jobapi.UploadContentType, jobapi.HeaderOffset, "0",
		jobapi.HeaderLength, strconv.Itoa(file.Len()), jobapi.HeaderSHA256, hex.EncodeToString(sum[:])); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	state, reason := s.finish, s.reason
	if rc.CancelRequested {
		state, reason = "canceled", "canceled by an admin"
	}
	if err := a.post(jobapi.Path(jobapi.FinishPath, j.ID), jobapi.FinishRequest{Claim: claim, State: state, Error: reason, Progress: sent}, nil); err != nil {
		return nil, err
	}
	return file.Bytes(), nil
}

// goPlay plays a run in the background.
func (a *fakeAgent) goPlay(s agentScript) <-chan playResult {
	c := make(chan playResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	a.t.Cleanup(cancel)
	go func() {
		file, err := a.play(ctx, s)
		c <- playResult{file, err}
	}()
	return c
}

type playResult struct {
	file []byte
	err  error
}

func mustPlayed(t *testing.T, c <-chan playResult) []byte {
	t.Helper()
	r := <-c
	if r.err != nil {
		t.Fatalf("the fake agent: %v", r.err)
	}
	return r.file
}

// mustCount counts a pcapng stream's packets with pcapio.
func mustCount(t *testing.T, data []byte) int {
	t.Helper()
	r, err := pcapio.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read the capture: %v", err)
	}
	n := 0
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("read the capture after %d packets: %v", n, err)
		}
		n++
	}
}

// TestJobRun: `job run` creates the job, follows the live stream into -w
// and prints the progress; a finished run exits 0 with -w FILE holding
// the complete result; a failed one exits 1 with its reason, its live
// stream on standard output.
func TestJobRun(t *testing.T) {
	c := mustJobConsole(t)
	a := c.mustEnroll("sensor-1")

	t.Run("finished into a file", func(t *testing.T) {
		played := a.goPlay(agentScript{packets: 300, finish: "finished"})
		path := filepath.Join(t.TempDir(), "out.pcapng")
		var out, errb bytes.Buffer
		args := append(append([]string{"job", "run"}, c.args()...), "--device", "sensor-1", "--interface", "eth0", "--duration", "30s", "-w", path, "udp", "port", "53")
		if err := run(args, &out, &errb); err != nil {
			t.Fatalf("job run: %v\n%s", err, errb.String())
		}
		file := mustPlayed(t, played)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, file) {
			t.Errorf("-w %s holds %d bytes (%d packets), want the uploaded result's %d", path, len(got), mustCount(t, got), len(file))
		}
		for _, want := range []string{"job 1: capturing on sensor-1 (" + a.id + ") eth0, filter \"udp port 53\"", "job 1 on sensor-1: ", "; live stream ", "is the run's complete result", "job 1 on sensor-1: finished: 300 packets"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("job run printed\n%s\nwant it to contain %q", errb.String(), want)
			}
		}
		if out.Len() != 0 {
			t.Errorf("job run -w FILE wrote %d bytes to standard output", out.Len())
		}
	})

	t.Run("failed to standard output", func(t *testing.T) {
		played := a.goPlay(agentScript{packets: 50, finish: "failed", reason: "the disk is on fire"})
		var out, errb bytes.Buffer
		args := append(append([]string{"job", "run"}, c.args()...), "--device", a.id, "--interface", "eth1", "-w", "-")
		err := run(args, &out, &errb)
		mustPlayed(t, played)
		if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "failed: the disk is on fire") {
			t.Errorf("job run of a run that fails: %v, want its reason (exit 1)\n%s", err, errb.String())
		}
		if n := mustCount(t, out.Bytes()); n != 50 {
			t.Errorf("the live stream on standard output has %d packets, want 50", n)
		}
	})

	t.Run("expired", func(t *testing.T) {
		var out, errb bytes.Buffer
		args := append(append([]string{"job", "run"}, c.args()...), "--device", a.id, "--interface", "eth0", "--expires-in", "1s", "-w", filepath.Join(t.TempDir(), "x.pcapng"))
		err := run(args, &out, &errb)
		if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "expired: no device accepted it before it expired") {
			t.Errorf("job run of a job no device accepts: %v, want expired (exit 1)\n%s", err, errb.String())
		}
	})
}

// TestJobRunRefused: what the console or the device lookup refuses is a
// usage error; a console whose CA is not the pinned one is refused
// before anything is sent.
func TestJobRunRefused(t *testing.T) {
	c := mustJobConsole(t)
	a := c.mustEnroll("sensor-1")
	b1 := c.mustEnroll("twin")
	b2 := c.mustEnroll("twin")
	base := append([]string{"job", "run"}, c.args()...)
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"unknown device", []string{"--device", "nowhere", "--interface", "eth0"}, true, "--device nowhere: no device has that id or hostname"},
		{"ambiguous hostname", []string{"--device", "twin", "--interface", "eth0"}, true, "2 devices have that hostname"},
		{"no interface", []string{"--device", "sensor-1"}, true, "--interface is required: give the interfaces of sensor-1 to capture on (it has eth0, eth1)"},
		{"bad filter", []string{"--device", a.id, "--interface", "eth0", "udp", "port", "banana"}, true, "the console refused the job: filter:"},
		{"unknown interface", []string{"--device", a.id, "--interface", "wlan9"}, true, "the console refused the job:"},
		{"limit above the policy", []string{"--device", a.id, "--interface", "eth0", "--duration", "48h"}, true, "--job-max-duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(append(append([]string{}, base...), tc.args...), &out, &errb)
			if err == nil || errors.Is(err, errUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("job run %q: %v, want an error (usage %v) containing %q", tc.args, err, tc.usage, tc.want)
			}
		})
	}
	var out, errb bytes.Buffer
	err := run([]string{"job", "run", "--device", "twin", "--interface", "eth0"}, &out, &errb)
	if !errors.Is(err, errUsage) {
		t.Errorf("no connection flags: %v", err)
	}
	err = run(append(append([]string{}, base...), "--device", "twin", "--interface", "eth0"), &out, &errb)
	for _, id := range []string{b1.id, b2.id} {
		if err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("ambiguous hostname: %v, want it to name %s", err, id)
		}
	}

	wrong := "sha256:" + strings.Repeat("0", 64)
	err = run([]string{"job", "run", "--console", c.srv.AdminURL(), "--token", c.token, "--ca-fingerprint", wrong, "--device", a.id, "--interface", "eth0"}, &out, &errb)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no CA certificate with the pinned fingerprint") {
		t.Errorf("wrong fingerprint: %v, want the console refused", err)
	}
	var l struct {
		Jobs []console.JobView `json:"jobs"`
	}
	c.mustAdmin("GET", "/api/v1/jobs", nil, &l, http.StatusOK)
	if len(l.Jobs) != 0 {
		t.Errorf("refused job runs created %d jobs", len(l.Jobs))
	}
}

// TestJobListShowCancel: list, show and cancel a queued job.
func TestJobListShowCancel(t *testing.T) {
	c := mustJobConsole(t)
	a := c.mustEnroll("sensor-1")
	var j console.JobView
	c.mustAdmin("POST", "/api/v1/jobs", map[string]any{"devices": []string{a.id}, "interfaces": []string{"eth0"}, "filter": "tcp port 443"}, &j, http.StatusCreated)
	id := strconv.FormatInt(j.ID, 10)

	var out, errb bytes.Buffer
	if err := run(append([]string{"job", "list"}, c.args()...), &out, &errb); err != nil {
		t.Fatalf("job list: %v", err)
	}
	if !strings.Contains(out.String(), id+"  ") || !strings.Contains(out.String(), "sensor-1 queued") || !strings.Contains(out.String(), "tcp port 443") {
		t.Errorf("job list printed\n%s", out.String())
	}
	out.Reset()
	if err := run(append([]string{"job", "show", id}, c.args()...), &out, &errb); err != nil {
		t.Fatalf("job show: %v", err)
	}
	if !strings.Contains(out.String(), "job "+id+": active") || !strings.Contains(out.String(), "sensor-1 ("+a.id+"): queued") {
		t.Errorf("job show printed\n%s", out.String())
	}
	out.Reset()
	if err := run(append(append([]string{"job", "show"}, c.args()...), id, "--json"), &out, &errb); err != nil {
		t.Fatalf("job show --json: %v", err)
	}
	var shown console.JobView
	if err := json.Unmarshal(out.Bytes(), &shown); err != nil || shown.ID != j.ID {
		t.Errorf("job show --json printed %s (%v)", out.String(), err)
	}
	out.Reset()
	if err := run(append([]string{"job", "cancel", id}, c.args()...), &out, &errb); err != nil {
		t.Fatalf("job cancel: %v", err)
	}
	if !strings.Contains(out.String(), "sensor-1: canceled (ended)") {
		t.Errorf("job cancel printed\n%s", out.String())
	}
	err := run(append([]string{"job", "cancel", id}, c.args()...), &out, &errb)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "has ended: nothing to cancel") {
		t.Errorf("second cancel: %v, want the console's refusal", err)
	}
	err = run(append([]string{"job", "show", "99"}, c.args()...), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "no job 99") {
		t.Errorf("show of no job: %v", err)
	}
}

// TestJobRunInterrupt: the process of `job run`: SIGINT cancels the job,
// the command waits for the run to end canceled and exits 1; a usage
// error exits 2.
func TestJobRunInterrupt(t *testing.T) {
	c := mustJobConsole(t)
	a := c.mustEnroll("sensor-1")

	cmd := exec.Command(os.Args[0], "job", "run", "--device", "sensor-1")
	cmd.Env = append(os.Environ(), "RINGTAP_CONSOLE_MAIN=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--console is required") {
		t.Errorf("job run without --console: %v, want exit 2 with the reason:\n%s", err, out)
	}

	played := a.goPlay(agentScript{packets: 20, finish: "finished", untilCancel: true})
	path := filepath.Join(t.TempDir(), "out.pcapng")
	cmd = exec.Command(os.Args[0], append(append([]string{"job", "run"}, c.args()...), "--device", "sensor-1", "--interface", "eth0", "-w", path)...)
	cmd.Env = append(os.Environ(), "RINGTAP_CONSOLE_MAIN=1")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Interrupt once the run is running.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(stderr.String(), ": running,"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("job run never reported the run running:\n%s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("job run did not end after SIGINT:\n%s", stderr.String())
	}
	mustPlayed(t, played)
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("job run interrupted: %v, want exit 1\n%s", err, stderr.String())
	}
	for _, want := range []string{"canceling", "cancel requested", "canceled: canceled by an admin"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("job run printed\n%s\nwant it to contain %q", stderr.String(), want)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, data); n != 20 {
		t.Errorf("-w %s: %d packets of the live stream, want 20", path, n)
	}
}

// lockedBuffer is a bytes.Buffer for a process's output and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
