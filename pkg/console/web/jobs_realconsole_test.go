package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// skipInKernelMatrix skips a test that runs a console: the kernel matrix
// (RINGTAP_KERNEL_MATRIX) runs the tests that check the kernel, and this
// one checks nothing about it.
func skipInKernelMatrix(t *testing.T) {
	t.Helper()
	if os.Getenv("RINGTAP_KERNEL_MATRIX") != "" {
		t.Skip("runs a console and a browser: nothing about the kernel (RINGTAP_KERNEL_MATRIX is set)")
	}
}

// jobAgent is an enrolled device speaking the agent API with its own
// client certificate, as the agent's poller and job runner would.
type jobAgent struct {
	t          *testing.T
	id         string
	hostname   string
	interfaces []string
	client     *http.Client
	url        string
}

// jobAgentMachineID is the machine id of every jobAgent.
const jobAgentMachineID = "00112233445566778899aabbccddeeff"

// mustEnrollJobAgent enrolls a device through the console's agent API
// with the agent's certificate manager, and sends one heartbeat.
func mustEnrollJobAgent(t *testing.T, rc *realConsole, hostname string, ifaces []string) *jobAgent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, _ := pki.NewInstallKey()
	now := time.Now()
	if err := rc.st.CreateInstallKey(ctx, store.InstallKey{Hash: store.HashSecret(key), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	logger := slog.New(slog.DiscardHandler)
	e, err := certmgr.Enroll(ctx, certmgr.EnrollConfig{
		ConsoleURL: rc.srv.AgentURL(), InstallKey: key, CAFingerprint: rc.ca.Fingerprint(), StateDir: dir,
		Hostname: hostname, MachineID: jobAgentMachineID, AgentVersion: "test", Interfaces: ifaces, Logger: logger,
	})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	m, err := certmgr.New(dir, certmgr.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	a := &jobAgent{t: t, id: e.DeviceID, hostname: hostname, interfaces: ifaces, url: m.ConsoleURL(),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: m.TLSConfig()}}}
	t.Cleanup(a.client.CloseIdleConnections)
	a.mustHeartbeat(0)
	return a
}

// mustDo sends a JSON request to the agent API and decodes the answer
// into out.
func (a *jobAgent) mustDo(want int, method, path string, body, out any) {
	a.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		a.t.Fatal(err)
	}
	req, err := http.NewRequest(method, a.url+path, bytes.NewReader(b))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, got, want)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, got)
		}
	}
}

// mustUpload PATCHes file[from:to] of the result of job id, as the
// resumable upload does, and returns the offset the console holds.
func (a *jobAgent) mustUpload(id int64, file []byte, from, to int) (held int64, complete string) {
	a.t.Helper()
	sum := sha256.Sum256(file)
	req, err := http.NewRequest("PATCH", a.url+jobapi.Path(jobapi.PcapPath, id), bytes.NewReader(file[from:to]))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", jobapi.UploadContentType)
	req.Header.Set(jobapi.HeaderOffset, strconv.Itoa(from))
	req.Header.Set(jobapi.HeaderLength, strconv.Itoa(len(file)))
	req.Header.Set(jobapi.HeaderSHA256, hex.EncodeToString(sum[:]))
	res, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("upload: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusNoContent {
		a.t.Fatalf("PATCH %s bytes %d-%d: %d %s, want 204", jobapi.Path(jobapi.PcapPath, id), from, to, res.StatusCode, b)
	}
	held, err = strconv.ParseInt(res.Header.Get(jobapi.HeaderOffset), 10, 64)
	if err != nil {
		a.t.Fatalf("upload answer's %s %q: %v", jobapi.HeaderOffset, res.Header.Get(jobapi.HeaderOffset), err)
	}
	return held, res.Header.Get(jobapi.HeaderComplete)
}

// capinfosPackets is the packet count capinfos reads in path.
func capinfosPackets(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("capinfos", "-c", "-M", path).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos %s: %v\n%s", path, err, out)
	}
	m := regexp.MustCompile(`Number of packets:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("capinfos %s says no packet count:\n%s", path, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestJobRealConsole creates a job through the page on the real console
// (admin API over HTTPS, SQLite store) for an enrolled device, plays that
// device's job runner over the agent API with its client certificate
// (claim, progress, a resumable upload of a pcapng in two parts,
// finish), watches the page follow, downloads the pcap through the page
// and reads it with capinfos.
func TestJobRealConsole(t *testing.T) {
	skipInKernelMatrix(t)
	if _, err := exec.LookPath("capinfos"); err != nil {
		testbedtest.SkipOrFail(t, "no capinfos on PATH (apt-get install tshark, or run hack/deps.sh)")
	}
	rc := mustRealConsole(t)
	agent := mustEnrollJobAgent(t, rc, "job-sensor-1", []string{"eth0", "eth1"})

	tb := rc.mustTab(t)
	tb.open("#/jobs")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("#signin-token")),
		chromedp.SendKeys(chromedp.CSS("#signin-token"), rc.token),
		chromedp.KeyEvent("\r"),
	)
	tb.waitFor("the empty list", `[...document.querySelectorAll(".empty")].some(e => e.checkVisibility() && e.innerText.includes("No capture jobs yet"))`)
	tb.do(chromedp.Click(chromedp.CSS("#new-job")))
	tb.waitFor("the device", fmt.Sprintf(`!!document.querySelector("#jf-dev-%s")`, agent.id))
	if got := tb.text(fmt.Sprintf(`.device-picks li[data-key=%q]`, agent.id)); !regexpMatch(`^job-sensor-1\s+online\s+eth0\s+eth1$`, got) {
		t.Errorf("device offered as %q, want job-sensor-1, online, eth0 eth1", got)
	}

	// The console's own checks: its compiler refuses the filter, under
	// the field.
	tb.do(
		chromedp.Click(chromedp.CSS("#jf-dev-"+agent.id)),
		chromedp.Click(chromedp.CSS(`.suggest button[data-iface=eth1]`)),
		tb.fill("#jf-filter", "udp prot 53"),
		tb.fill("#jf-duration", "30s"),
		chromedp.Click(chromedp.CSS("#jf-submit")),
	)
	tb.waitFor("the console's message", `document.querySelector("#jf-filter-error").innerText.includes("syntax error")`)
	jobs, err := rc.st.ListJobs(context.Background(), store.ListJobsOptions{})
	if err != nil || len(jobs) != 0 {
		t.Fatalf("jobs after the rejection: %v, %v; want none", jobs, err)
	}
	tb.do(
		tb.fill("#jf-filter", "udp port 53"),
		chromedp.Click(chromedp.CSS("#jf-submit")),
	)
	tb.waitFor("the job page", `/^#\/jobs\/\d+$/.test(location.hash) && !!document.querySelector("table.runs tbody.run")`)
	id, _ := strconv.ParseInt(eval[string](tb, `location.hash.slice("#/jobs/".length)`), 10, 64)
	j, err := rc.st.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %s %s %s %d", j.Spec.Interfaces, j.Spec.Filter, j.Spec.Duration, j.Spec.Destination, len(j.Runs)); got != "[eth1] udp port 53 30s console 1" {
		t.Errorf("stored job %s, want [eth1] udp port 53 30s console 1", got)
	}
	runSel := fmt.Sprintf(`table.runs tbody[data-key=%q]`, agent.id)
	tb.waitFor("the queued run", fmt.Sprintf(`document.querySelector('%s .badge.state').innerText.trim() === "queued"`, runSel))

	// The device's runner: claim, run, upload, finish.
	pcap := mustPcapng(t, 25)
	claimBytes := make([]byte, 16)
	rand.Read(claimBytes)
	claim := hex.EncodeToString(claimBytes)
	var aj jobapi.AgentJob
	agent.mustDo(http.StatusOK, "POST", jobapi.Path(jobapi.ClaimPath, id), jobapi.ClaimRequest{Claim: claim}, &aj)
	if aj.State != "accepted" || aj.Filter != "udp port 53" || time.Duration(aj.Duration) != 30*time.Second {
		t.Errorf("claimed %+v, want accepted, the filter, 30s", aj)
	}
	agent.mustDo(http.StatusOK, "POST", jobapi.Path(jobapi.ProgressPath, id), jobapi.ProgressRequest{Claim: claim, State: "running",
		Progress: jobapi.Progress{Packets: 12, Bytes: 1_020, Size: 2_048}}, nil)
	tb.waitFor("the running run", fmt.Sprintf(`document.querySelector('%s .run-main td:nth-child(3)').innerText.trim() === "12"`, runSel))
	wantLive := fmt.Sprintf("%s/api/v1/jobs/%d/runs/%s/live", tb.url, id, agent.id)
	if got := tb.text(runSel + " code.cmd"); !bytes.Contains([]byte(got), []byte(wantLive)) {
		t.Errorf("live command %q, want it to stream %s", got, wantLive)
	}
	agent.mustDo(http.StatusOK, "POST", jobapi.Path(jobapi.ProgressPath, id), jobapi.ProgressRequest{Claim: claim, State: "uploading",
		Progress: jobapi.Progress{Packets: 25, Bytes: 1_600, Size: uint64(len(pcap))}}, nil)
	tb.waitFor("the upload", fmt.Sprintf(`document.querySelector('%s .badge.state').innerText.trim() === "uploading"`, runSel))
	half := len(pcap) / 2
	if held, complete := agent.mustUpload(id, pcap, 0, half); held != int64(half) || complete == "?1" {
		t.Fatalf("after the first part the console holds %d bytes (complete %s), want %d, not complete", held, complete, half)
	}
	if held, complete := agent.mustUpload(id, pcap, half, len(pcap)); held != int64(len(pcap)) || complete != "?1" {
		t.Fatalf("after the second part the console holds %d bytes (complete %s), want all %d, complete", held, complete, len(pcap))
	}
	agent.mustDo(http.StatusOK, "POST", jobapi.Path(jobapi.FinishPath, id), jobapi.FinishRequest{Claim: claim, State: "finished",
		Progress: jobapi.Progress{Packets: 25, Bytes: 1_600, Size: uint64(len(pcap))}}, nil)

	tb.waitFor("the finished run", fmt.Sprintf(`document.querySelector('%s .badge.state').innerText.trim() === "finished" && !!document.querySelector('%s button[data-act=download]')`, runSel, runSel))
	if got := tb.text(".view-head .badge"); got != "finished" {
		t.Errorf("job state %q, want finished", got)
	}
	steps := eval[string](tb, fmt.Sprintf(`[...document.querySelectorAll('%s .timeline .step-state')].map(s => s.innerText).join(" ")`, runSel))
	if steps != "queued accepted running uploading finished" {
		t.Errorf("timeline %q, want every state", steps)
	}
	if tb.visible(".view-head button.danger-outline") {
		t.Error("a finished job offers Cancel")
	}
	tb.screenshot("job-real-console")

	next := tb.allowDownloads()
	tb.do(chromedp.Click(chromedp.CSS(runSel + " button[data-act=download]")))
	path := next()
	if want := fmt.Sprintf("job-%d-job-sensor-1.pcapng", id); filepath.Base(path) != want {
		t.Errorf("saved as %s, want %s", filepath.Base(path), want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pcap) {
		t.Errorf("the download has %d bytes, not the %d uploaded", len(got), len(pcap))
	}
	if n := capinfosPackets(t, path); n != 25 {
		t.Errorf("capinfos counts %d packets in the download, want the 25 uploaded", n)
	}
}
