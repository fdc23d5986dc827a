//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// ---- the console binary, built once ----

var (
	consoleBinOnce sync.Once
	consoleBin     string
	consoleBinErr  error
)

func mustConsoleBin(t *testing.T) string {
	t.Helper()
	skipInKernelMatrix(t, "it builds ringtap-console, which takes minutes under emulation; the console does not depend on the kernel")
	consoleBinOnce.Do(func() {
		dir := filepath.Dir(binPath) // removed by TestMain
		consoleBin = filepath.Join(dir, "ringtap-console")
		out, err := exec.Command("go", "build", "-o", consoleBin, "../ringtap-console").CombinedOutput()
		if err != nil {
			consoleBinErr = fmt.Errorf("build ringtap-console: %v\n%s", err, out)
		}
	})
	if consoleBinErr != nil {
		t.Fatal(consoleBinErr)
	}
	return consoleBin
}

// ---- processes in a namespace ----

type ceProc struct {
	name string
	cmd  *exec.Cmd
	log  *itSyncBuffer
	done chan struct{}
	err  error
}

// mustCEStart runs bin with args in network namespace h (ip netns exec,
// which execs: the process is the command itself), killed at cleanup.
func mustCEStart(t *testing.T, name string, h testbed.Host, bin string, args ...string) *ceProc {
	t.Helper()
	p := &ceProc{name: name, log: &itSyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", filepath.Base(h.NSPath), bin}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name, p.log)
		}
	})
	return p
}

func (p *ceProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// mustStop sends SIGTERM and waits for a clean exit.
func (p *ceProc) mustStop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop 60s after SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.log)
	}
}

// ceClient returns an HTTP client whose connections are made inside h's
// namespace, trusting roots (nil: plain HTTP).
func ceClient(h testbed.Host, roots *tls.Config) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := h.Do(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: roots, DisableKeepAlives: true}}
}

// ---- the console's admin API ----

type ceAdmin struct {
	t      *testing.T
	client *http.Client
	base   string
	token  string
}

func (a *ceAdmin) do(method, path string, body any, header map[string]string) (int, []byte, http.Header) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp.Header
}

func (a *ceAdmin) mustJSON(method, path string, body any, header map[string]string, wantCode int, out any) {
	a.t.Helper()
	code, raw, _ := a.do(method, path, body, header)
	if code != wantCode {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, code, raw, wantCode)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// ceConsole is a console serving in namespace A.
type ceConsole struct {
	data, db, fingerprint, agentURL string
	admin                           *ceAdmin
	proc                            *ceProc
}

// mustCEConsole inits a console (once per data dir) and serves it in
// pair.A on pair.A's address; with prev, it serves prev's data directory
// and database again.
func mustCEConsole(t *testing.T, pair *testbed.Pair, data string, prev *ceConsole) *ceConsole {
	t.Helper()
	db := ""
	if prev != nil {
		db = prev.db
	}
	return mustCEConsoleDB(t, pair, data, db, prev)
}

// mustCEConsoleDB is mustCEConsole with `--db db` given to init and
// serve ("": SQLite in the data directory).
func mustCEConsoleDB(t *testing.T, pair *testbed.Pair, data, db string, prev *ceConsole) *ceConsole {
	t.Helper()
	bin := mustConsoleBin(t)
	c := &ceConsole{data: data, db: db}
	var dbFlag []string
	if db != "" {
		dbFlag = []string{"--db", db}
	}
	if prev == nil {
		out, err := exec.Command(bin, append([]string{"init", "--data", data, "--json"}, dbFlag...)...).Output()
		if err != nil {
			t.Fatalf("ringtap-console init: %v", err)
		}
		var ir struct {
			AdminToken    string `json:"admin_token"`
			CAFingerprint string `json:"ca_fingerprint"`
		}
		if err := json.Unmarshal(out, &ir); err != nil || ir.AdminToken == "" || !strings.HasPrefix(ir.CAFingerprint, "sha256:") {
			t.Fatalf("ringtap-console init --json: %q: %v", out, err)
		}
		c.fingerprint = ir.CAFingerprint
		c.admin = &ceAdmin{t: t, token: ir.AdminToken}
	} else {
		c.fingerprint, c.admin = prev.fingerprint, prev.admin
	}
	ip := pair.A.IPv4.String()
	c.agentURL = "https://" + ip + ":8443"
	c.proc = mustCEStart(t, "console", pair.A, bin, append([]string{"serve", "--data", data,
		"--agent-listen", ip + ":8443", "--admin-listen", ip + ":8444", "--hosts", ip}, dbFlag...)...)
	ca, err := pki.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	c.admin.client = ceClient(pair.A, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool()})
	c.admin.base = "https://" + ip + ":8444"
	mustITWaitFor(t, 30*time.Second, "the console's admin API", func() (bool, string) {
		if c.proc.exited() {
			t.Fatalf("console exited: %v\n%s", c.proc.err, c.proc.log)
		}
		req, _ := http.NewRequest("GET", c.admin.base+"/api/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+c.admin.token)
		resp, err := c.admin.client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return c
}

// mustEnroll makes an install key through the admin API and runs the
// enrollment command the console printed for it in pair.B, into state.
// It returns the new device's id.
func (c *ceConsole) mustEnroll(t *testing.T, pair *testbed.Pair, state string) string {
	t.Helper()
	before := c.mustDeviceIDs(t)
	var key struct {
		Key           string `json:"key"`
		EnrollCommand string `json:"enroll_command"`
	}
	c.admin.mustJSON("POST", "/api/v1/install-keys", map[string]string{"expires_in": "1h", "note": "e2e"}, nil, http.StatusCreated, &key)
	args := strings.Fields(key.EnrollCommand)
	if len(args) < 3 || args[0] != "ringtap" || args[1] != "agent" || args[2] != "enroll" ||
		!strings.Contains(key.EnrollCommand, c.agentURL) || !strings.Contains(key.EnrollCommand, key.Key) || !strings.Contains(key.EnrollCommand, c.fingerprint) {
		t.Fatalf("enroll_command %q: want ringtap agent enroll with %s, the key and %s", key.EnrollCommand, c.agentURL, c.fingerprint)
	}
	enroll := mustCEStart(t, "enroll", pair.B, binPath, append(args[1:], "--state", state)...)
	<-enroll.done
	if enroll.err != nil {
		t.Fatalf("%s: %v\n%s", key.EnrollCommand, enroll.err, enroll.log)
	}
	var id string
	for d := range c.mustDeviceIDs(t) {
		if !before[d] {
			id = d
		}
	}
	if id == "" {
		t.Fatalf("no new device after %s:\n%s", key.EnrollCommand, enroll.log)
	}
	return id
}

func (c *ceConsole) mustDeviceIDs(t *testing.T) map[string]bool {
	t.Helper()
	var devs struct {
		Devices []struct {
			ID string `json:"id"`
		} `json:"devices"`
	}
	c.admin.mustJSON("GET", "/api/v1/devices", nil, nil, 200, &devs)
	ids := map[string]bool{}
	for _, d := range devs.Devices {
		ids[d.ID] = true
	}
	return ids
}

// ceCapture is a capture of the admin API writing into dir.
func ceCapture(name, iface, filter, dir string) map[string]any {
	return map[string]any{"name": name, "interface": iface, "filter": filter, "output": map[string]any{"dir": dir}}
}

// mustPutCaptures replaces device id's captures with If-Match the
// generation the console has, and checks that the new generation is one
// more, which it returns.
func (c *ceConsole) mustPutCaptures(t *testing.T, id string, captures ...map[string]any) int64 {
	t.Helper()
	var cur struct {
		Generation int64             `json:"generation"`
		Captures   []json.RawMessage `json:"captures"`
	}
	c.admin.mustJSON("GET", "/api/v1/devices/"+id+"/captures", nil, nil, 200, &cur)
	if captures == nil {
		captures = []map[string]any{}
	}
	var put struct {
		Generation int64 `json:"generation"`
	}
	c.admin.mustJSON("PUT", "/api/v1/devices/"+id+"/captures", map[string]any{"generation": cur.Generation, "captures": captures},
		map[string]string{"If-Match": fmt.Sprint(cur.Generation)}, 200, &put)
	if put.Generation != cur.Generation+1 {
		t.Fatalf("PUT captures: generation %d, want %d", put.Generation, cur.Generation+1)
	}
	return put.Generation
}

// ceHeartbeat is the admin API's status of a device: its last heartbeat.
type ceHeartbeat struct {
	AppliedGeneration int64                 `json:"applied_generation"`
	Captures          []agent.CaptureStatus `json:"captures"`
	ReceivedAt        time.Time             `json:"received_at"`
}

// mustWaitHeartbeat waits until device id's last heartbeat in the admin
// API satisfies ok.
func (c *ceConsole) mustWaitHeartbeat(t *testing.T, id string, within time.Duration, what string, ok func(ceHeartbeat) bool) {
	t.Helper()
	mustITWaitFor(t, within, what, func() (bool, string) {
		code, raw, _ := c.admin.do("GET", "/api/v1/devices/"+id+"/status", nil, nil)
		if code != 200 {
			return false, fmt.Sprint(code, string(raw))
		}
		var hb ceHeartbeat
		if err := json.Unmarshal(raw, &hb); err != nil {
			return false, err.Error()
		}
		return ok(hb), string(raw)
	})
}

// capture is the heartbeat's status of capture name (the zero one when
// there is none).
func (hb ceHeartbeat) capture(name string) agent.CaptureStatus {
	for _, c := range hb.Captures {
		if c.Name == name {
			return c
		}
	}
	return agent.CaptureStatus{}
}

// ---- the agent in namespace B ----

type ceAgent struct {
	proc   *ceProc
	client *http.Client
	url    string
}

// mustCEAgent runs `ringtap agent --config cfg --state state` in pair.B
// and waits for its /healthz. The config must have the agent listen on
// 127.0.0.1:19273; with cfg "" the agent runs without --config, and
// listens on the default address.
func mustCEAgent(t *testing.T, pair *testbed.Pair, cfg, state string) *ceAgent {
	t.Helper()
	a := &ceAgent{client: ceClient(pair.B, nil), url: "http://127.0.0.1:19273"}
	args := []string{"agent", "--state", state}
	if cfg != "" {
		args = append(args, "--config", cfg)
	} else {
		a.url = "http://" + config.DefaultListen
	}
	a.proc = mustCEStart(t, "agent", pair.B, binPath, args...)
	mustITWaitFor(t, 30*time.Second, "the agent's /healthz", func() (bool, string) {
		if a.proc.exited() {
			t.Fatalf("agent exited: %v\n%s", a.proc.err, a.proc.log)
		}
		resp, err := a.client.Get(a.url + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return a
}

// ceStatus is the agent's /status.json with the console's keys.
type ceStatus struct {
	agent.Status
	Console struct {
		AppliedGeneration int64  `json:"applied_generation"`
		Restored          bool   `json:"restored"`
		LastError         string `json:"last_error"`
		Failures          int    `json:"failures"`
	} `json:"console"`
	Certificate struct {
		DeviceID      string    `json:"device_id"`
		NotAfter      time.Time `json:"not_after"`
		Expired       bool      `json:"expired"`
		NeedsReenroll bool      `json:"needs_reenroll"`
		Ready         bool      `json:"ready"`
		Reason        string    `json:"reason"`
	} `json:"certificate"`
}

func (a *ceAgent) status(t *testing.T) (ceStatus, error) {
	t.Helper()
	var st ceStatus
	resp, err := a.client.Get(a.url + "/status.json")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// capture is the status of capture name (the zero one when there is
// none).
func (st ceStatus) capture(name string) agent.CaptureStatus {
	for _, c := range st.Captures {
		if c.Name == name {
			return c
		}
	}
	return agent.CaptureStatus{}
}

// mustWaitRunning waits until capture name is running with the given
// applied generation.
func (a *ceAgent) mustWaitRunning(t *testing.T, name string, gen int64, within time.Duration) ceStatus {
	t.Helper()
	return a.mustWaitStatus(t, within, fmt.Sprintf("capture %s running at generation %d", name, gen), func(st ceStatus) bool {
		return st.capture(name).State == agent.CaptureRunning && st.Console.AppliedGeneration == gen
	})
}

// mustWaitCaptured waits until capture name has captured n frames.
func (a *ceAgent) mustWaitCaptured(t *testing.T, name string, n uint64, within time.Duration) ceStatus {
	t.Helper()
	return a.mustWaitStatus(t, within, fmt.Sprintf("%d frames captured by %s", n, name), func(st ceStatus) bool {
		return st.capture(name).Captured == n
	})
}

// mustWaitStatus waits until /status.json satisfies ok.
func (a *ceAgent) mustWaitStatus(t *testing.T, within time.Duration, what string, ok func(ceStatus) bool) ceStatus {
	t.Helper()
	var st ceStatus
	mustITWaitFor(t, within, what, func() (bool, string) {
		if a.proc.exited() {
			t.Fatalf("agent exited: %v", a.proc.err)
		}
		var err error
		if st, err = a.status(t); err != nil {
			return false, err.Error()
		}
		return ok(st), fmt.Sprintf("%+v", st)
	})
	return st
}

// TestConsoleEndToEnd is the end-to-end test: console in one
// namespace, agent in another; an install key made through the admin API;
// the agent enrolled with the command the console printed; a capture added
// through the admin API runs within seconds, the frames sent are in its
// files, and the heartbeat brings the counters to the admin API. Then the
// console stops and the agent restarts: it restores the capture from the
// config it persisted, and applies nothing twice when the console is back.
func TestConsoleEndToEnd(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	skipInKernelMatrix(t, "console and enrollment do not depend on the kernel (and building ringtap-console under emulation takes minutes); the capture path is tested on every kernel by the other tests")
	if _, err := exec.LookPath("capinfos"); err != nil {
		testbedtest.SkipOrFail(t, "capinfos not found: install wireshark-common")
	}
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtce"})
	tmp := t.TempDir()
	data, state, out := filepath.Join(tmp, "console"), filepath.Join(tmp, "state"), filepath.Join(tmp, "captures")
	cfg := filepath.Join(tmp, "agent.yaml")
	// The local file gives the HTTP listener only: the captures come from
	// the console.
	mustITWriteFile(t, cfg, "http:\n  listen: 127.0.0.1:19273\n")

	con := mustCEConsole(t, pair, data, nil)
	id := con.mustEnroll(t, pair, state)
	for _, f := range []string{"key.pem", "cert.pem"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s after enroll: %v %v, want mode 0600", f, fi, err)
		}
	}
	if ids := con.mustDeviceIDs(t); len(ids) != 1 {
		t.Fatalf("devices: %v, want one", ids)
	}

	ag := mustCEAgent(t, pair, cfg, state)

	// A capture through the admin API, with If-Match.
	gen := con.mustPutCaptures(t, id, ceCapture("dns", pair.B.Link, "udp port 53", filepath.Join(out, "dns")))
	added := time.Now()
	st := ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	t.Logf("capture running %v after the PUT", time.Since(added).Round(time.Millisecond))
	if st.Certificate.DeviceID != id || !st.Certificate.Ready {
		t.Errorf("/status.json certificate: %+v, want device %s, ready", st.Certificate, id)
	}

	// Frames from A: 40 to port 53 (captured), 10 to port 80 (not).
	frames := mustUDP(t, pair, 40, 120)
	other := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: pair.A.MAC, DstMAC: pair.B.MAC, Src: pair.A.IPv4, Dst: pair.B.IPv4, SrcPort: 1000, DstPort: 80, Size: 120}))
	for range 10 {
		frames = append(frames, other)
	}
	mustITSend(t, pair.A, frames)

	// The heartbeat brings the counters to the admin API (every 10s).
	con.mustWaitHeartbeat(t, id, 30*time.Second, "the counters in the admin API's device status", func(hb ceHeartbeat) bool {
		c := hb.capture("dns")
		return c.State == agent.CaptureRunning && c.Captured == 40 && c.Seen >= 50 && hb.AppliedGeneration == gen && !hb.ReceivedAt.IsZero()
	})

	// The agent stops (files finished): the 40 frames are in its files.
	ag.proc.mustStop(t)
	files := itFinishedFiles(t, filepath.Join(out, "dns"))
	if n := itSumPackets(t, files); n != 40 {
		t.Fatalf("capinfos counts %d packets in %v, want 40", n, files)
	}
	if fi, err := os.Stat(filepath.Join(state, "applied-config.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the persisted config: %v %v, want mode 0600", fi, err)
	}

	// Restart without the console: the capture comes back from the
	// persisted config.
	con.proc.mustStop(t)
	ag = mustCEAgent(t, pair, cfg, state)
	st = ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	if !st.Console.Restored {
		t.Errorf("/status.json console after a restart without the console: %+v, want restored", st.Console)
	}
	mustITSend(t, pair.A, mustUDP(t, pair, 25, 120))
	ag.mustWaitCaptured(t, "dns", 25, 15*time.Second)
	logBefore := strings.Count(ag.proc.log.String(), "applied the console's config")

	// The console is back: the agent asks for what is newer than what it
	// restored, and applies nothing twice.
	con = mustCEConsole(t, pair, data, con)
	con.mustWaitHeartbeat(t, id, 60*time.Second, "a heartbeat from the restarted agent", func(hb ceHeartbeat) bool {
		return hb.capture("dns").Captured == 25
	})
	if n := strings.Count(ag.proc.log.String(), "applied the console's config"); n != logBefore {
		t.Errorf("the agent applied a config again after the console came back (%d applies)", n-logBefore)
	}
	ag.proc.mustStop(t)
	files = itFinishedFiles(t, filepath.Join(out, "dns"))
	if n := itSumPackets(t, files); n != 65 {
		t.Errorf("capinfos counts %d packets in %v, want 65 (40 before the restart, 25 after)", n, files)
	}
}

// TestEnrollErrors: a wrong fingerprint, a refused key and an unreachable
// console each end enroll with one sentence and a non-zero exit.
func TestEnrollErrors(t *testing.T) {
	skipInKernelMatrix(t, "enrollment does not depend on the kernel (and building ringtap-console under emulation takes minutes)")
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rten"})
	tmp := t.TempDir()
	con := mustCEConsole(t, pair, filepath.Join(tmp, "console"), nil)
	var key struct {
		Key string `json:"key"`
	}
	con.admin.mustJSON("POST", "/api/v1/install-keys", map[string]string{"expires_in": "1h"}, nil, http.StatusCreated, &key)
	wrongFP := "sha256:" + strings.Repeat("ab", 32)
	unusedKey, _ := pki.NewInstallKey()
	for _, tc := range []struct {
		name, url, key, fp, want string
	}{
		{"wrong fingerprint", con.agentURL, key.Key, wrongFP, "is not the one pinned by --ca-fingerprint"},
		{"refused key", con.agentURL, unusedKey, con.fingerprint, "the console refused the install key"},
		{"unreachable", "https://" + pair.A.IPv4.String() + ":9", key.Key, con.fingerprint, "cannot reach the console"},
		{"missing flag", con.agentURL, "", con.fingerprint, "needs --key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"agent", "enroll", "--console", tc.url, "--ca-fingerprint", tc.fp, "--state", filepath.Join(tmp, "state-"+strings.ReplaceAll(tc.name, " ", "-"))}
			if tc.key != "" {
				args = append(args, "--key", tc.key)
			}
			p := mustCEStart(t, "enroll", pair.B, binPath, args...)
			<-p.done
			msg := p.log.String()
			if p.err == nil {
				t.Fatalf("enroll succeeded:\n%s", msg)
			}
			lines := nonEmptyLines(msg)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "ringtap: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("enroll said:\n%s\nwant one line with %q", msg, tc.want)
			}
		})
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}
