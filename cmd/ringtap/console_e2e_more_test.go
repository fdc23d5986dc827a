//go:build linux

package main

// More end-to-end tests of the console and an enrolled agent (issue 11's
// audit): the console on PostgreSQL; agent and console restarted under
// each other, with the generations each applies; a certificate that
// expired while the agent was down, and re-enrollment; a revoked device;
// the console's captures replacing the local file's. They use the
// helpers of console_e2e_test.go.

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// ceBed is a console in pair.A and one device enrolled in pair.B.
type ceBed struct {
	pair             *testbed.Pair
	tmp              string
	data, state, out string
	con              *ceConsole
	id               string
}

// mustCEBed serves a console (on PostgreSQL database db; "": SQLite) and
// enrolls one device.
func mustCEBed(t *testing.T, name, db string) *ceBed {
	t.Helper()
	testbedtest.RequirePrivileged(t)
	skipInKernelMatrix(t, "console and enrollment do not depend on the kernel (and building ringtap-console under emulation takes minutes); the capture path is tested on every kernel by the other tests")
	if _, err := exec.LookPath("capinfos"); err != nil {
		testbedtest.SkipOrFail(t, "capinfos not found: install wireshark-common")
	}
	b := &ceBed{pair: testbedtest.MustNewPair(t, testbed.PairConfig{Name: name}), tmp: t.TempDir()}
	b.data, b.state, b.out = filepath.Join(b.tmp, "console"), filepath.Join(b.tmp, "state"), filepath.Join(b.tmp, "captures")
	b.con = mustCEConsoleDB(t, b.pair, b.data, db, nil)
	b.id = b.con.mustEnroll(t, b.pair, b.state)
	return b
}

// httpOnly writes a local config that gives the agent's HTTP listener
// only, and returns its path.
func (b *ceBed) httpOnly(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(b.tmp, "agent.yaml")
	mustITWriteFile(t, cfg, "http:\n  listen: 127.0.0.1:19273\n")
	return cfg
}

// capture is a console capture on the pair's link writing to out/name.
func (b *ceBed) capture(name, filter string) map[string]any {
	return ceCapture(name, b.pair.B.Link, filter, filepath.Join(b.out, name))
}

// udp is n UDP frames from A to B's port.
func (b *ceBed) udp(n int, port uint16) [][]byte {
	f := trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: b.pair.A.MAC, DstMAC: b.pair.B.MAC,
		Src: b.pair.A.IPv4, Dst: b.pair.B.IPv4, SrcPort: 1000, DstPort: port, Size: 120}))
	out := make([][]byte, n)
	for i := range out {
		out[i] = f
	}
	return out
}

// mustPackets checks that capinfos counts want packets in the finished
// files of out/name.
func (b *ceBed) mustPackets(t *testing.T, name string, want int) {
	t.Helper()
	files := itFinishedFiles(t, filepath.Join(b.out, name))
	if n := itSumPackets(t, files); n != want {
		t.Errorf("capinfos counts %d packets in %s's files %v, want %d", n, name, files, want)
	}
}

// get answers a GET of the agent's path: status code and body.
func (a *ceAgent) get(path string) (int, string, error) {
	resp, err := a.client.Get(a.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), err
}

// mustWaitReady waits until /readyz answers code (200 or 503) with a
// body holding substr.
func (a *ceAgent) mustWaitReady(t *testing.T, within time.Duration, code int, substr string) {
	t.Helper()
	mustITWaitFor(t, within, fmt.Sprintf("/readyz %d with %q", code, substr), func() (bool, string) {
		got, body, err := a.get("/readyz")
		return err == nil && got == code && strings.Contains(body, substr), fmt.Sprint(got, " ", body, err)
	})
}

// mustMetric checks that /metrics has the line want ("name value").
func (a *ceAgent) mustMetric(t *testing.T, want string) {
	t.Helper()
	code, body, err := a.get("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	if !slices.Contains(strings.Split(body, "\n"), want) {
		t.Errorf("/metrics has no line %q:\n%s", want, grepLines(body, strings.Fields(want)[0]))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// ceApply is a config the poller applied ("applied") or restored
// ("restored"), as its log says.
type ceApply struct {
	Kind       string
	Generation int64
}

var ceApplyRe = regexp.MustCompile(`msg="(applied the console's config|restored the last applied config)" generation=(\d+)`)

// ceApplies lists, in order, what each of the agent logs says it applied
// or restored.
func ceApplies(logs ...string) [][]ceApply {
	out := make([][]ceApply, len(logs))
	for i, log := range logs {
		for _, m := range ceApplyRe.FindAllStringSubmatch(log, -1) {
			kind := "applied"
			if strings.HasPrefix(m[1], "restored") {
				kind = "restored"
			}
			g, _ := strconv.ParseInt(m[2], 10, 64)
			out[i] = append(out[i], ceApply{kind, g})
		}
	}
	return out
}

// TestConsolePostgresEndToEnd is TestConsoleEndToEnd's flow with the
// console on PostgreSQL (init --db, serve --db, over the cluster's Unix
// socket from the console's namespace): enrollment, captures put twice,
// frames in the files, the counters in the admin API, and the store's
// rows in PostgreSQL, not in a SQLite file.
func TestConsolePostgresEndToEnd(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	skipInKernelMatrix(t, "the console's store does not depend on the kernel (and building ringtap-console under emulation takes minutes)")
	db := pgtest.Start(t)
	b := mustCEBed(t, "rtcp", db)
	if _, err := os.Stat(filepath.Join(b.data, console.DBFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("with --db, the data directory has %s (%v): the console did not use PostgreSQL", console.DBFile, err)
	}
	ag := mustCEAgent(t, b.pair, b.httpOnly(t), b.state)

	gen := b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"))
	ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	mustITSend(t, b.pair.A, append(b.udp(30, 53), b.udp(10, 80)...))
	ag.mustWaitCaptured(t, "dns", 30, 15*time.Second)

	// A second list; applying it sends a heartbeat at once, with the
	// counters of the first capture.
	gen2 := b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"), b.capture("web", "udp port 80"))
	ag.mustWaitRunning(t, "web", gen2, 15*time.Second)
	mustITSend(t, b.pair.A, b.udp(5, 80))
	ag.mustWaitCaptured(t, "web", 5, 15*time.Second)
	b.con.mustWaitHeartbeat(t, b.id, 15*time.Second, "the counters in the admin API's device status", func(hb ceHeartbeat) bool {
		c := hb.capture("dns")
		return hb.AppliedGeneration == gen2 && c.State == agent.CaptureRunning && c.Captured == 30 && c.Seen >= 40
	})

	// The rows are PostgreSQL's.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var desired, applied int64
	if err := conn.QueryRow(ctx, `SELECT d.generation, s.applied_generation FROM desired_configs d JOIN statuses s USING (device_id) WHERE device_id = $1`, b.id).Scan(&desired, &applied); err != nil {
		t.Fatalf("device %s in PostgreSQL: %v", b.id, err)
	}
	if desired != gen2 || applied != gen2 {
		t.Errorf("PostgreSQL has desired generation %d and applied %d of device %s, want %d", desired, applied, b.id, gen2)
	}

	ag.proc.mustStop(t)
	b.mustPackets(t, "dns", 30)
	b.mustPackets(t, "web", 5)
}

// TestConsoleRestartMatrix restarts each side under the other: the agent
// while the console runs (without its config file this time: an enrolled
// agent needs none), then the console while the agent runs. After each
// restart the captures run again, a new list put is one generation more
// and applied once, and over the three agent logs no generation is
// applied twice nor goes back. The first agent's config file has a
// capture of its own on the same traffic: it never runs.
func TestConsoleRestartMatrix(t *testing.T) {
	b := mustCEBed(t, "rtcr", "")
	local := filepath.Join(b.out, "local")
	cfg := filepath.Join(b.tmp, "agent.yaml")
	mustITWriteFile(t, cfg, fmt.Sprintf("captures:\n  - name: local\n    interface: %s\n    filter: \"udp port 53\"\n    output:\n      dir: %s\nhttp:\n  listen: 127.0.0.1:19273\n", b.pair.B.Link, local))
	var logs []string

	// The config file's capture is replaced by the console's.
	gen := b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"))
	ag := mustCEAgent(t, b.pair, cfg, b.state)
	ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	if !strings.Contains(ag.proc.log.String(), "ignored_captures=1") {
		t.Errorf("the agent did not say it ignores the file's capture:\n%s", ag.proc.log)
	}
	mustITSend(t, b.pair.A, b.udp(20, 53))
	st := ag.mustWaitCaptured(t, "dns", 20, 15*time.Second)
	mustOnlyCaptures(t, st, "dns")

	// (a) The agent restarts, the console up: the capture is back at
	// once from the persisted config, and nothing is applied again.
	ag.proc.mustStop(t)
	logs = append(logs, ag.proc.log.String())
	ag = mustCEAgent(t, b.pair, "", b.state)
	ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	mustITSend(t, b.pair.A, b.udp(20, 53))
	ag.mustWaitCaptured(t, "dns", 20, 15*time.Second)
	prev := gen
	gen = b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"), b.capture("web", "udp port 80"))
	if gen != prev+1 {
		t.Errorf("the PUT after the agent's restart made generation %d, want %d", gen, prev+1)
	}
	ag.mustWaitRunning(t, "web", gen, 15*time.Second)

	// (b) The console restarts, the agent up: its poll comes back, and
	// takes the next list.
	b.con.proc.mustStop(t)
	b.con = mustCEConsole(t, b.pair, b.data, b.con)
	prev = gen
	gen = b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"), b.capture("web", "udp port 80 or udp port 81"))
	if gen != prev+1 {
		t.Errorf("the PUT after the console's restart made generation %d, want %d", gen, prev+1)
	}
	changed := time.Now()
	st = ag.mustWaitRunning(t, "web", gen, 15*time.Second)
	t.Logf("the agent applied generation %d %v after the PUT that followed the console's restart", gen, time.Since(changed).Round(time.Millisecond))
	if st.Console.Failures != 0 || st.Console.LastError != "" {
		t.Errorf("/status.json console after the new generation: %+v, want no failures", st.Console)
	}
	mustITSend(t, b.pair.A, append(b.udp(20, 53), append(b.udp(10, 80), b.udp(5, 81)...)...))
	st = ag.mustWaitStatus(t, 15*time.Second, "40 dns and 15 web frames", func(st ceStatus) bool {
		return st.capture("dns").Captured == 40 && st.capture("web").Captured == 15
	})
	mustOnlyCaptures(t, st, "dns", "web")
	ag.proc.mustStop(t)
	logs = append(logs, ag.proc.log.String())

	// Each generation applied once, none twice, none back: the first
	// agent applied 1; the second restored 1, then applied 2 and 3.
	want := [][]ceApply{{{"applied", gen - 2}}, {{"restored", gen - 2}, {"applied", gen - 1}, {"applied", gen}}}
	if diff := cmp.Diff(want, ceApplies(logs...)); diff != "" {
		t.Errorf("configs applied and restored by each agent (-want +got):\n%s", diff)
	}
	b.mustPackets(t, "dns", 60)
	b.mustPackets(t, "web", 15)
	if _, err := os.Stat(local); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the config file's capture wrote to %s (%v): an enrolled agent runs the console's captures only", local, err)
	}
}

// mustOnlyCaptures checks that /status.json lists exactly names.
func mustOnlyCaptures(t *testing.T, st ceStatus, names ...string) {
	t.Helper()
	var got []string
	for _, c := range st.Captures {
		got = append(got, c.Name)
	}
	slices.Sort(got)
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("/status.json captures (-want +got):\n%s", diff)
	}
}

// TestConsoleCertificateLifecycle: a certificate that expired while the
// agent was down leaves the agent capturing with its last config but not
// ready, and saying it must be enrolled again; `ringtap agent enroll`
// into its state directory while it runs makes it ready again within
// seconds, without a restart. Then the device is revoked: within 5 s the agent is not ready
// and says so, and its capture keeps running.
func TestConsoleCertificateLifecycle(t *testing.T) {
	b := mustCEBed(t, "rtcc", "")
	cfg := b.httpOnly(t)
	gen := b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"))
	ag := mustCEAgent(t, b.pair, cfg, b.state)
	ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	mustITSend(t, b.pair.A, b.udp(20, 53))
	ag.mustWaitCaptured(t, "dns", 20, 15*time.Second)
	ag.proc.mustStop(t)

	// Expired while the agent was down.
	expired := mustExpiredCert(t, b.data, b.state)
	ag = mustCEAgent(t, b.pair, cfg, b.state)
	st := ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	c := st.Certificate
	if c.DeviceID != b.id || !c.NotAfter.Equal(expired.NotAfter) || !c.Expired || !c.NeedsReenroll || c.Ready || !strings.Contains(c.Reason, "ringtap agent enroll") {
		t.Errorf("/status.json certificate with an expired one: %+v, want device %s, not_after %v, expired, needs_reenroll, not ready, a reason that says to enroll", c, b.id, expired.NotAfter)
	}
	ag.mustWaitReady(t, 5*time.Second, http.StatusServiceUnavailable, "client certificate expired")
	ag.mustMetric(t, "ringtap_certmgr_needs_reenroll 1")
	ag.mustMetric(t, "ringtap_certmgr_ready 0")
	mustITSend(t, b.pair.A, b.udp(20, 53))
	ag.mustWaitCaptured(t, "dns", 20, 15*time.Second)

	// Enrolled again while it runs: it takes the new certificate without
	// a restart (certmgr looks at the state directory every 2 s). The new
	// device has no captures configured yet, so the old device's keep
	// running, with no generation of the new device's applied.
	id2 := b.con.mustEnroll(t, b.pair, b.state)
	enrolled := time.Now()
	ag.mustWaitReady(t, 15*time.Second, http.StatusOK, "ok")
	t.Logf("the running agent was ready with its new enrollment %v after it was written", time.Since(enrolled).Round(time.Millisecond))
	st = ag.mustWaitRunning(t, "dns", -1, 15*time.Second)
	if c := st.Certificate; c.DeviceID != id2 || c.Expired || c.NeedsReenroll || !c.Ready {
		t.Errorf("/status.json certificate after enrolling again: %+v, want device %s, ready", c, id2)
	}
	ag.mustMetric(t, "ringtap_certmgr_needs_reenroll 0")

	// Revoked: not ready within 5 s, the capture runs on.
	b.con.admin.mustJSON("POST", "/api/v1/devices/"+id2+"/revoke", nil, nil, http.StatusOK, nil)
	revoked := time.Now()
	ag.mustWaitReady(t, 5*time.Second, http.StatusServiceUnavailable, "ringtap agent enroll")
	t.Logf("/readyz 503 %v after the revocation", time.Since(revoked).Round(time.Millisecond))
	st = ag.mustWaitStatus(t, 5*time.Second, "needs_reenroll after the revocation", func(st ceStatus) bool {
		return st.Certificate.NeedsReenroll && !st.Certificate.Ready
	})
	if st.Certificate.DeviceID != id2 || st.Certificate.Expired {
		t.Errorf("/status.json certificate after the revocation: %+v, want device %s, not expired", st.Certificate, id2)
	}
	ag.mustMetric(t, "ringtap_certmgr_needs_reenroll 1")
	mustITSend(t, b.pair.A, b.udp(20, 53))
	st = ag.mustWaitCaptured(t, "dns", 40, 15*time.Second) // 20 before the enrollment, in this process
	if c := st.capture("dns"); c.State != agent.CaptureRunning {
		t.Errorf("capture dns after the revocation: %+v, want running", c)
	}
	ag.proc.mustStop(t)
	b.mustPackets(t, "dns", 60)
}

// TestConsoleReenrolledAgentTakesTheNewDevicesCaptures: enrolled again
// with a new install key, the agent is a new device, whose generations
// start again at 1. The new device's first list must run, not be taken
// for the old device's generation 1 already applied; until it comes the
// old device's captures run.
func TestConsoleReenrolledAgentTakesTheNewDevicesCaptures(t *testing.T) {
	b := mustCEBed(t, "rtcn", "")
	cfg := b.httpOnly(t)
	gen := b.con.mustPutCaptures(t, b.id, b.capture("dns", "udp port 53"))
	ag := mustCEAgent(t, b.pair, cfg, b.state)
	ag.mustWaitRunning(t, "dns", gen, 15*time.Second)
	id2 := b.con.mustEnroll(t, b.pair, b.state) // while the agent runs
	gen2 := b.con.mustPutCaptures(t, id2, b.capture("web", "udp port 80"))
	ag.mustWaitStatus(t, 15*time.Second, fmt.Sprintf("device %s's generation %d (web only) running", id2, gen2), func(st ceStatus) bool {
		return st.Certificate.DeviceID == id2 && st.capture("web").State == agent.CaptureRunning && st.capture("dns").Name == ""
	})
	b.con.mustWaitHeartbeat(t, id2, 15*time.Second, "the new device's heartbeat with its generation", func(hb ceHeartbeat) bool {
		return hb.AppliedGeneration == gen2 && hb.capture("web").State == agent.CaptureRunning && hb.capture("dns").Name == ""
	})
}

// mustExpiredCert replaces the state directory's certificate with one of
// the console's CA for the same key and device that expired an hour ago,
// and returns it.
func mustExpiredCert(t *testing.T, consoleData, state string) *x509.Certificate {
	t.Helper()
	ca, err := pki.Load(consoleData)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(state, certmgr.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.ParseKeyPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err = os.ReadFile(filepath.Join(state, certmgr.CertFile)); err != nil {
		t.Fatal(err)
	}
	cur, err := pki.ParseCertPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.DeviceID(cur)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignCSR(csr, id, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustITWriteFile(t, filepath.Join(state, certmgr.CertFile), string(pki.EncodeCertPEM(cert)))
	if err := os.Chmod(filepath.Join(state, certmgr.CertFile), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert
}
