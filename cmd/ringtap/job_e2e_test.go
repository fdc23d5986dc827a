//go:build linux

package main

// End-to-end tests of capture jobs (issue 12): a real console and real
// agents, each agent in a network namespace of its own with the link the
// jobs capture (tap0, frames from the test) and a management link to the
// console's namespace. Helpers are in job_e2e_helpers_test.go; the
// console and agent processes are console_e2e_test.go's.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

const jobSkip = "capture jobs need ringtap-console and two processes per test; the capture path is tested on every kernel by the other tests"

// jobFilter selects part of jobFrames and all of jobUDP.
const jobFilter = "(udp and dst port 1000) or icmp"

// requireTools skips the test (fails it under CI=true) when a tool it
// checks with is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testbedtest.SkipOrFail(t, "%s not found: install tcpdump, wireshark-common and tshark", tool)
		}
	}
}

// TestJobTwoDevices: one job on two devices, with a filter and a snaplen;
// each device gets its own mix of frames; the job finishes and each run's
// pcap holds exactly what tcpdump selects with the same filter from what
// was sent to that device, cut to the snaplen. Each run went queued →
// accepted → running → uploading → finished, with times.
func TestJobTwoDevices(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tcpdump", "capinfos")
	b := mustJobBed(t, 2, true)
	const snaplen = 256
	req := jobRequest(jobFilter, "8s", b.devs...)
	req["snaplen"] = snaplen
	req["max_bytes"] = 8 << 20
	j := b.mustCreateJob(req)
	if j.Filter != jobFilter || j.SnapLen != snaplen || j.Duration != "8s" || j.MaxBytes != 8<<20 || j.Destination != "console" || j.State != "active" {
		t.Errorf("created job %+v, want filter %q, snaplen %d, duration 8s, max_bytes %d, destination console, active", j, jobFilter, snaplen, 8<<20)
	}
	for _, d := range b.devs {
		b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
	}
	sent := make([][][]byte, len(b.devs))
	for i, d := range b.devs {
		sent[i] = jobFrames(t, d, i)
		mustITSend(t, d.pair.A, sent[i])
	}
	for i, d := range b.devs {
		r := b.mustWaitRun(j.ID, d.id, 30*time.Second, "finished with its result", func(r runView) bool {
			return r.State == "finished" && r.Result != nil || r.State != "running" && r.State != "uploading"
		})
		if r.State != "finished" {
			t.Fatalf("run on %s: %s, want finished", d.name, r)
		}
		mustTransitions(t, j, r, "queued", "accepted", "running", "uploading", "finished")
		want := itTcpdumpSelect(t, sent[i], jobFilter, snaplen)
		wantBytes := 0
		for _, p := range want {
			wantBytes += len(p)
		}
		if r.Packets != uint64(len(want)) || r.Bytes != uint64(wantBytes) || r.Drops != 0 || r.Error != "" || r.Hostname == "" {
			t.Errorf("run on %s: %d packets of %d bytes, %d drops, error %q, hostname %q; want %d packets of %d bytes (of %d frames sent), no drops, no error, a hostname",
				d.name, r.Packets, r.Bytes, r.Drops, r.Error, r.Hostname, len(want), wantBytes, len(sent[i]))
		}
		path := b.mustDownload(j, r)
		if fi, err := os.Stat(path); err != nil || uint64(fi.Size()) != r.Size {
			t.Errorf("run on %s: size %d, the pcap has %v (%v)", d.name, r.Size, fi.Size(), err)
		}
		mustHoldExactly(t, path, sent[i], jobFilter, snaplen)
		// Ranges work (http.ServeContent): the first four bytes are the
		// section header block's type.
		code, raw, _ := b.con.admin.do("GET", r.Result.Download, nil, map[string]string{"Range": "bytes=0-3"})
		if code != http.StatusPartialContent || string(raw) != "\x0a\x0d\x0d\x0a" {
			t.Errorf("GET %s with Range bytes=0-3: %d %x, want 206 0a0d0d0a", r.Result.Download, code, raw)
		}
		d.mustSpoolEmpty(t, j.ID)
		d.mustJobMetrics(t, 5*time.Second, `ringtap_jobs_finished_total{state="finished"} 1`, "ringtap_jobs_running 0", "ringtap_job_uploads_pending 0", "ringtap_job_held_bytes 0")
	}
	j = b.mustJob(j.ID)
	if j.State != "done" {
		t.Errorf("job after both runs finished: %s, want done", j.State)
	}
	// A finished job has nothing to cancel, and stays as it is.
	code, raw, _ := b.con.admin.do("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", j.ID), nil, nil)
	if code != http.StatusConflict || !strings.Contains(string(raw), "has ended: nothing to cancel") {
		t.Errorf("cancel of the finished job: %d %s, want 409 ... has ended: nothing to cancel", code, raw)
	}
	if after := b.mustJob(j.ID); after.CancelRequestedAt != nil || !cmp.Equal(after.Runs, j.Runs) {
		t.Errorf("the refused cancel changed the job: %+v, was %+v", after, j)
	}
}

// TestJobCancel: a cancel in the middle of a 5-minute run stops it; within
// 2 s the run is canceled with its partial pcap uploaded, and the pcap is
// valid and holds what was captured.
func TestJobCancel(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tcpdump", "capinfos")
	b := mustJobBed(t, 1, true)
	d := b.devs[0]
	req := jobRequest(jobFilter, "5m", d)
	req["max_bytes"] = 4 << 20
	j := b.mustCreateJob(req)
	b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
	sent := append(jobUDP(d, 100, 200, 1), jobFrames(t, d, 0)...)
	mustITSend(t, d.pair.A, sent)
	want := itTcpdumpSelect(t, sent, jobFilter, 1<<20)
	b.mustWaitRun(j.ID, d.id, 10*time.Second, fmt.Sprintf("%d packets", len(want)), func(r runView) bool { return r.Packets == uint64(len(want)) })

	asked := time.Now()
	var cj jobView
	b.con.admin.mustJSON("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", j.ID), nil, nil, 200, &cj)
	if cj.CancelRequestedAt == nil || cj.State != "active" {
		t.Errorf("cancel answered %+v, want cancel_requested_at set and the job still active", cj)
	}
	var r runView
	var sawCanceled time.Duration
	for {
		r = b.mustJob(j.ID).run(t, d.id)
		if r.State == "canceled" && sawCanceled == 0 {
			sawCanceled = time.Since(asked)
		}
		if r.ended() && (r.Result != nil || r.State != "canceled") {
			break
		}
		if time.Since(asked) > 30*time.Second {
			t.Fatalf("run 30s after the cancel: %s", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	observed := time.Since(asked)
	if r.State != "canceled" {
		t.Fatalf("run after the cancel: %s, want canceled", r)
	}
	_, at, reason := r.last()
	stored := at.Sub(*cj.CancelRequestedAt)
	t.Logf("cancel → canceled: %v by the console's transition times, %v observed (state canceled seen at %v), with the result", stored.Round(time.Millisecond), observed.Round(time.Millisecond), sawCanceled.Round(time.Millisecond))
	if stored > 2*time.Second || observed > 2*time.Second {
		t.Errorf("the run was canceled %v after the cancel (%v observed by the test), want within 2s", stored, observed)
	}
	if reason != "canceled by an admin" || r.Error != "canceled by an admin" {
		t.Errorf("canceled run: reason %q, error %q, want %q", reason, r.Error, "canceled by an admin")
	}
	if s := r.states(); len(s) < 4 || !cmp.Equal(s[:3], []string{"queued", "accepted", "running"}) {
		t.Errorf("canceled run's transitions %v, want queued, accepted, running, ..., canceled", s)
	}
	mustNoRepeats(t, r)
	path := b.mustDownload(j, r)
	if n := itCapinfosPackets(t, path); n == 0 || uint64(n) != r.Packets {
		t.Errorf("the canceled run's pcap: capinfos counts %d packets, the run says %d; want them equal and above 0", n, r.Packets)
	}
	mustHoldExactly(t, path, sent, jobFilter, 1<<20)
	if j := b.mustJob(j.ID); j.State != "done" {
		t.Errorf("job after its run was canceled: %s, want done", j.State)
	}
	d.mustSpoolEmpty(t, j.ID)
	d.mustJobMetrics(t, 5*time.Second, `ringtap_jobs_finished_total{state="canceled"} 1`, "ringtap_jobs_running 0", "ringtap_job_uploads_pending 0")
	// Nothing is left attached once the run stopped.
	mustITWaitFor(t, 5*time.Second, "nothing attached after the cancel", func() (bool, string) {
		left := jobAttached(t, d)
		return len(left) == 0, strings.Join(left, "; ")
	})
}

// TestJobConsoleRestart: the console is SIGKILLed during a run and
// restarted on the same data directory and ports; the run goes on,
// finishes and uploads exactly once, with every packet.
func TestJobConsoleRestart(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tcpdump", "capinfos")
	b := mustJobBed(t, 1, true)
	d := b.devs[0]
	req := jobRequest(jobFilter, "15s", d)
	req["max_bytes"] = 4 << 20
	j := b.mustCreateJob(req)
	b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))

	var sent [][]byte
	send := func(frames [][]byte) {
		mustITSend(t, d.pair.A, frames)
		sent = append(sent, frames...)
	}
	send(append(jobUDP(d, 10, 150, 1), jobFrames(t, d, 0)...))
	b.mustWaitRun(j.ID, d.id, 10*time.Second, "the first packets", func(r runView) bool { return r.Packets > 0 })
	b.mustKillConsole()
	killed := time.Now()
	send(jobUDP(d, 10, 160, 2)) // captured while the console is gone
	time.Sleep(time.Second)
	b.mustServe()
	t.Logf("console back %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	send(jobUDP(d, 10, 170, 3))

	r := b.mustWaitRun(j.ID, d.id, 40*time.Second, "finished with its result", func(r runView) bool {
		return r.State == "finished" && r.Result != nil || r.State == "failed" || r.State == "canceled"
	})
	if r.State != "finished" {
		t.Fatalf("run after the console's restart: %s, want finished", r)
	}
	mustTransitions(t, j, r, "queued", "accepted", "running", "uploading", "finished")
	want := itTcpdumpSelect(t, sent, jobFilter, 1<<20)
	path := b.mustDownload(j, r)
	if n := itCapinfosPackets(t, path); uint64(n) != r.Packets || n != len(want) {
		t.Errorf("capinfos counts %d packets, the run says %d, %d were sent that match", n, r.Packets, len(want))
	}
	mustHoldExactly(t, path, sent, jobFilter, 1<<20)
	d.mustSpoolEmpty(t, j.ID)
	d.mustJobMetrics(t, 5*time.Second, `ringtap_jobs_finished_total{state="finished"} 1`, `ringtap_jobs_finished_total{state="failed"} 0`)
	// Exactly one result in the console's data directory, no partial.
	ents, err := os.ReadDir(filepath.Join(b.con.data, "jobs", fmt.Sprint(j.ID)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{d.id + ".pcapng"}, names); diff != "" {
		t.Errorf("the job's files in the console's data directory (-want +got):\n%s", diff)
	}
	// Still finished, once, a little later (no late upload or finish
	// from a retry changes it).
	time.Sleep(2 * time.Second)
	if again := b.mustJob(j.ID).run(t, d.id); !cmp.Equal(again, r) {
		t.Errorf("the run changed after it finished:\n%s\nwas\n%s", again, r)
	}

	// A run that ends while the console is down keeps its result in the
	// agent's spool, and uploads it once the console is back.
	req = jobRequest(jobFilter, "3s", d)
	req["max_bytes"] = 4 << 20
	j = b.mustCreateJob(req)
	b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
	sent = jobUDP(d, 20, 180, 4)
	mustITSend(t, d.pair.A, sent)
	b.mustWaitRun(j.ID, d.id, 10*time.Second, "20 packets", func(r runView) bool { return r.Packets == 20 })
	b.mustKillConsole()
	d.mustJobMetrics(t, 10*time.Second, "ringtap_jobs_running 0", "ringtap_job_uploads_pending 1")
	spooled := filepath.Join(d.state, "jobs", fmt.Sprint(j.ID), "capture.pcapng")
	if n := itCapinfosPackets(t, spooled); n != 20 {
		t.Errorf("the spooled result %s holds %d packets, want 20", spooled, n)
	}
	b.mustServe()
	r = b.mustWaitRun(j.ID, d.id, 40*time.Second, "finished with its result", func(r runView) bool {
		return r.ended() && (r.Result != nil || r.State != "finished")
	})
	mustTransitions(t, j, r, "queued", "accepted", "running", "uploading", "finished")
	if r.Packets != 20 {
		t.Errorf("the spooled run: %d packets, want 20", r.Packets)
	}
	mustHoldExactly(t, b.mustDownload(j, r), sent, jobFilter, 1<<20)
	d.mustSpoolEmpty(t, j.ID)
	d.mustJobMetrics(t, 5*time.Second, `ringtap_jobs_finished_total{state="finished"} 2`, "ringtap_job_uploads_pending 0")
}

// TestJobAgentKilled: both agents of a two-device job are SIGKILLed
// mid-run. Nothing stays attached to their interfaces. The first agent
// restarts: its run becomes failed with the restart's reason and its
// partial pcap is uploaded. The second never comes back: the console
// fails its run for silence.
func TestJobAgentKilled(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tcpdump", "capinfos", "tc", "ip")
	const silence = 10 * time.Second
	b := mustJobBed(t, 2, true, "--job-silence", silence.String())
	req := jobRequest(jobFilter, "5m", b.devs...)
	req["max_bytes"] = 4 << 20
	j := b.mustCreateJob(req)
	sent := make([][][]byte, 2)
	for i, d := range b.devs {
		b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
		if got := jobAttached(t, d); len(got) == 0 {
			t.Fatalf("nothing attached to %s's %s while its run captures", d.name, jobTap)
		}
		sent[i] = append(jobUDP(d, 50, 200, byte(i)), jobFrames(t, d, i)...)
		mustITSend(t, d.pair.A, sent[i])
	}
	for i, d := range b.devs {
		n := uint64(len(itTcpdumpSelect(t, sent[i], jobFilter, 1<<20)))
		b.mustWaitRun(j.ID, d.id, 10*time.Second, fmt.Sprintf("%d packets", n), func(r runView) bool { return r.Packets == n })
	}
	// Let the writers' flush timer put the packets in the files.
	time.Sleep(500 * time.Millisecond)
	for _, d := range b.devs {
		mustJobKill(t, d.agent.proc)
	}
	killed := time.Now()
	for _, d := range b.devs {
		mustITWaitFor(t, 5*time.Second, "nothing attached to "+d.name+"'s "+jobTap+" after SIGKILL", func() (bool, string) {
			left := jobAttached(t, d)
			return len(left) == 0, strings.Join(left, "; ")
		})
	}

	back := b.devs[0]
	back.mustStartAgent(t)
	r := b.mustWaitRun(j.ID, back.id, 20*time.Second, "failed with its result", func(r runView) bool {
		return r.ended() && (r.Result != nil || r.State != "failed")
	})
	t.Logf("restarted agent's run failed with its result %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	_, _, reason := r.last()
	const restarted = "the agent restarted during the run (it was killed or crashed); the partial capture was uploaded"
	if r.State != "failed" || reason != restarted || r.Error != restarted {
		t.Errorf("run of the restarted agent: %s\nwant failed with %q", r, restarted)
	}
	if s := r.states(); len(s) < 4 || !cmp.Equal(s[:3], []string{"queued", "accepted", "running"}) {
		t.Errorf("transitions %v, want queued, accepted, running, ..., failed", s)
	}
	mustNoRepeats(t, r)
	path := b.mustDownload(j, r)
	if n := itCapinfosPackets(t, path); n == 0 || uint64(n) != r.Packets {
		t.Errorf("the recovered pcap: capinfos counts %d packets, the run says %d; want them equal and above 0", n, r.Packets)
	}
	mustHoldExactly(t, path, sent[0], jobFilter, 1<<20)
	back.mustSpoolEmpty(t, j.ID)
	back.mustJobMetrics(t, 5*time.Second, `ringtap_jobs_finished_total{state="failed"} 1`, "ringtap_jobs_running 0", "ringtap_job_uploads_pending 0")
	if left := jobAttached(t, back); len(left) != 0 {
		t.Errorf("attached to %s's %s after its agent recovered the run: %v", back.name, jobTap, left)
	}

	gone := b.devs[1]
	r = b.mustWaitRun(j.ID, gone.id, silence+10*time.Second, "failed for silence", func(r runView) bool { return r.ended() })
	_, at, reason := r.last()
	t.Logf("silent device's run failed %v after SIGKILL (--job-silence %v)", at.Sub(killed).Round(time.Millisecond), silence)
	wantReason := fmt.Sprintf("the device stopped reporting for %v: the agent stopped or lost the console", silence)
	if r.State != "failed" || reason != wantReason || r.Result != nil {
		t.Errorf("run of the agent that never came back: %s\nwant failed with %q, no result", r, wantReason)
	}
	if at.Sub(killed) < silence-2*time.Second { // its last progress came at most 1s before the kill
		t.Errorf("the silent run failed %v after its agent was killed, before --job-silence %v", at.Sub(killed), silence)
	}
	if j := b.mustJob(j.ID); j.State != "done" {
		t.Errorf("job: %s, want done", j.State)
	}
}

// TestJobExpires: a job for an enrolled device whose agent does not run
// expires, with its transition and reason, and then has nothing to
// cancel or download.
func TestJobExpires(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	b := mustJobBed(t, 1, false)
	d := b.devs[0]
	req := jobRequest("udp", "10s", d)
	req["expires_in"] = "3s"
	j := b.mustCreateJob(req)
	if got := j.ExpiresAt.Sub(j.CreatedAt); got != 3*time.Second {
		t.Errorf("expires_at - created_at = %v, want 3s", got)
	}
	r := b.mustWaitRun(j.ID, d.id, 10*time.Second, "expired", func(r runView) bool { return r.State != "queued" })
	mustTransitions(t, j, r, "queued", "expired")
	_, at, reason := r.last()
	if r.State != "expired" || reason != "no device accepted it before it expired" {
		t.Errorf("run: %s, want expired with %q", r, "no device accepted it before it expired")
	}
	if at.Before(j.ExpiresAt) || at.After(j.ExpiresAt.Add(2*time.Second)) {
		t.Errorf("expired at %v, the job expires at %v: want within 2s after", at, j.ExpiresAt)
	}
	if j := b.mustJob(j.ID); j.State != "done" {
		t.Errorf("expired job: %s, want done", j.State)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", j.ID), http.StatusConflict, fmt.Sprintf("job %d has ended: nothing to cancel", j.ID)},
		{"GET", fmt.Sprintf("/api/v1/jobs/%d/runs/%s/pcap", j.ID, d.id), http.StatusConflict, "run is expired: "},
		{"GET", fmt.Sprintf("/api/v1/jobs/%d/runs/%s/live", j.ID, d.id), http.StatusConflict, "/pcap instead"},
	} {
		code, raw, _ := b.con.admin.do(tc.method, tc.path, nil, nil)
		if code != tc.code || !strings.Contains(jobError(t, raw), tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, raw, tc.code, tc.want)
		}
	}
}

// TestJobLiveTshark: a running job's live stream, read from the admin API
// by `tshark -i -`, shows packets while the run goes on, and ends when
// the run ends; `ringtap-console job run -w -` piped into tshark does the
// same from a terminal.
func TestJobLiveTshark(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tshark")
	b := mustJobBed(t, 1, true)
	d := b.devs[0]

	t.Run("admin API", func(t *testing.T) {
		req := jobRequest(jobFilter, "30s", d)
		req["max_bytes"] = 4 << 20
		j := b.mustCreateJob(req)
		r := b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
		if want := fmt.Sprintf("/api/v1/jobs/%d/runs/%s/live", j.ID, d.id); r.Live != want {
			t.Errorf("run's live %q, want %q", r.Live, want)
		}
		hreq, _ := http.NewRequest("GET", b.con.adminURL+r.Live, nil)
		hreq.Header.Set("Authorization", "Bearer "+b.con.admin.token)
		opened := time.Now()
		resp, err := b.streamClient().Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pcapng" {
			raw, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s: %s %q %s, want 200 application/x-pcapng", r.Live, resp.Status, resp.Header.Get("Content-Type"), raw)
		}
		stop := jobStream(t, d, jobUDP(d, 5, 120, 9), 100*time.Millisecond)
		defer stop()
		ts := mustTshark(t, resp.Body)
		first := ts.mustFirst(t, 20*time.Second)
		t.Logf("live: tshark's first packet %v after the stream was opened", first.Sub(opened).Round(time.Millisecond))
		if got := b.mustJob(j.ID).run(t, d.id); got.State != "running" {
			t.Errorf("run when tshark saw its first packet: %s, want running", got.State)
		}
		ts.mustCount(t, 10, 20*time.Second)
		sent := len(stop())
		b.con.admin.mustJSON("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", j.ID), nil, nil, 200, nil)
		// The stream ends once the run has: tshark sees the end of its
		// input and exits.
		n := ts.mustExit(t, 20*time.Second)
		fin := b.mustJob(j.ID).run(t, d.id)
		t.Logf("live: tshark read %d packets, the run captured %d, %d sent", n, fin.Packets, sent)
		if !fin.ended() || n == 0 || uint64(n) > fin.Packets {
			t.Errorf("after the stream ended: run %s, tshark read %d packets; want the run ended, and at least one, at most the run's", fin, n)
		}
	})

	t.Run("job run -w -", func(t *testing.T) {
		cmd := exec.Command("ip", "netns", "exec", b.cpair.A.NSName, mustConsoleBin(t), "job", "run",
			"--console", b.con.adminURL, "--token", b.con.admin.token, "--ca-fingerprint", b.con.fingerprint,
			"--device", d.id, "--interface", jobTap, "--duration", "8s", "--max-bytes", fmt.Sprint(4<<20), "-w", "-", "udp", "and", "dst", "port", "1000")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr itSyncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			if t.Failed() {
				t.Logf("ringtap-console job run:\n%s", stderr.String())
			}
		})
		started := time.Now()
		stop := jobStream(t, d, jobUDP(d, 5, 130, 17), 100*time.Millisecond)
		defer stop()
		ts := mustTshark(t, stdout)
		first := ts.mustFirst(t, 20*time.Second)
		t.Logf("job run -w -: tshark's first packet %v after the command started", first.Sub(started).Round(time.Millisecond))
		var cerr error
		select {
		case cerr = <-exited:
		case <-time.After(40 * time.Second):
			t.Fatalf("ringtap-console job run still runs 40s after its 8s job started\n%s", stderr.String())
		}
		exitedAt := time.Now()
		stop()
		if cerr != nil {
			t.Errorf("ringtap-console job run of a job that finishes: %v, want exit 0\n%s", cerr, stderr.String())
		}
		t.Logf("job run -w -: tshark's first packet %v before the command exited", exitedAt.Sub(first).Round(time.Millisecond))
		n := ts.mustExit(t, 10*time.Second)
		var list struct {
			Jobs []jobView `json:"jobs"`
		}
		b.con.admin.mustJSON("GET", "/api/v1/jobs?limit=1", nil, nil, 200, &list)
		if len(list.Jobs) != 1 {
			t.Fatalf("GET /api/v1/jobs?limit=1: %+v", list)
		}
		r := list.Jobs[0].run(t, d.id)
		t.Logf("job run -w -: tshark read %d packets, the run captured %d", n, r.Packets)
		if lines := nonEmptyLines(stderr.String()); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], fmt.Sprintf("finished: %d packets", r.Packets)) {
			t.Errorf("ringtap-console job run's last line on stderr does not say the run finished with its %d packets:\n%s", r.Packets, stderr.String())
		}
		if list.Jobs[0].Filter != "udp and dst port 1000" || r.State != "finished" || n == 0 || uint64(n) > r.Packets {
			t.Errorf("job run's job %+v, run %s, tshark read %d: want filter %q, finished, tshark at least one packet and at most the run's", list.Jobs[0], r, n, "udp and dst port 1000")
		}
	})
}

// jobTshark is `tshark -i -` reading a stream, with the times its packets
// came.
type jobTshark struct {
	cmd    *exec.Cmd
	stderr *itSyncBuffer
	lines  chan time.Time
	done   chan error
	n      int
}

func mustTshark(t *testing.T, in io.Reader) *jobTshark {
	t.Helper()
	ts := &jobTshark{stderr: &itSyncBuffer{}, lines: make(chan time.Time, 1<<16), done: make(chan error, 1)}
	ts.cmd = exec.Command("tshark", "-l", "-n", "-i", "-", "-T", "fields", "-e", "frame.len")
	ts.cmd.Stdin = in
	ts.cmd.Stderr = ts.stderr
	out, err := ts.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ts.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("tshark:\n%s", ts.stderr)
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) != "" {
				ts.lines <- time.Now()
			}
		}
		close(ts.lines)
		ts.done <- ts.cmd.Wait()
	}()
	return ts
}

// mustFirst waits for tshark's first packet and returns when it came.
func (ts *jobTshark) mustFirst(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case at, ok := <-ts.lines:
		if !ok {
			t.Fatalf("tshark ended without a packet:\n%s", ts.stderr)
		}
		ts.n++
		return at
	case <-time.After(within):
		t.Fatalf("tshark printed no packet in %v:\n%s", within, ts.stderr)
	}
	return time.Time{}
}

// mustCount waits until tshark printed n packets.
func (ts *jobTshark) mustCount(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for ts.n < n {
		select {
		case _, ok := <-ts.lines:
			if !ok {
				t.Fatalf("tshark ended after %d packets, want %d:\n%s", ts.n, n, ts.stderr)
			}
			ts.n++
		case <-deadline:
			t.Fatalf("tshark printed %d packets in %v, want %d:\n%s", ts.n, within, n, ts.stderr)
		}
	}
}

// mustExit waits for tshark to end by itself (its input ended) and
// returns how many packets it printed.
func (ts *jobTshark) mustExit(t *testing.T, within time.Duration) int {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-ts.lines:
			if !ok {
				if err := <-ts.done; err != nil {
					t.Errorf("tshark: %v\n%s", err, ts.stderr)
				}
				return ts.n
			}
			ts.n++
		case <-deadline:
			t.Fatalf("tshark still reads %v later (its input did not end) after %d packets:\n%s", within, ts.n, ts.stderr)
		}
	}
}

// jobError is the sentence of an {"error": ...} body ("" if it is not
// one).
func jobError(t *testing.T, raw []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return ""
	}
	return e.Error
}

// TestJobBadInput: every bad job is refused with a 4xx and one sentence
// that says what is wrong, and nothing is stored; so are a cancel of an
// ended job and requests for what does not exist.
func TestJobBadInput(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	b := mustJobBed(t, 1, false)
	d := b.devs[0]
	good := func(change func(map[string]any)) map[string]any {
		req := jobRequest("udp port 53", "30s", d)
		change(req)
		return req
	}
	for _, tc := range []struct {
		name string
		req  any
		want string
	}{
		{"no devices", good(func(m map[string]any) { m["devices"] = []string{} }), "device"},
		{"unknown device", good(func(m map[string]any) { m["devices"] = []string{d.id, "nosuchdevice"} }), "device nosuchdevice is not enrolled"},
		{"no interfaces", good(func(m map[string]any) { delete(m, "interfaces") }), "interface"},
		{"interface the device lacks", good(func(m map[string]any) { m["interfaces"] = []string{"eth9"} }), "eth9"},
		{"bad filter", good(func(m map[string]any) { m["filter"] = "udp prot 53" }), "filter"},
		{"bad duration", good(func(m map[string]any) { m["duration"] = "soon" }), "duration"},
		{"duration above the policy", good(func(m map[string]any) { m["duration"] = "2h" }), "1h"},
		{"max_bytes above the policy", good(func(m map[string]any) { m["max_bytes"] = 2 << 30 }), "max_bytes"},
		{"expires_in above the policy", good(func(m map[string]any) { m["expires_in"] = "48h" }), "expires_in"},
		{"bad destination", good(func(m map[string]any) { m["destination"] = "ftp://example/x" }), "destination"},
		{"not an object", "{devices", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, raw, _ := b.con.admin.do("POST", "/api/v1/jobs", tc.req, nil)
			msg := jobError(t, raw)
			if code != http.StatusBadRequest || msg == "" || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("POST /api/v1/jobs: %d %s, want 400 with one sentence naming %q", code, raw, tc.want)
			}
			t.Logf("%d %s", code, msg)
		})
	}
	var list struct {
		Jobs []jobView `json:"jobs"`
	}
	b.con.admin.mustJSON("GET", "/api/v1/jobs", nil, nil, 200, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("after refused jobs, GET /api/v1/jobs lists %+v, want none", list.Jobs)
	}
	// The first job stored gets the first id: nothing was stored and
	// removed before.
	j := b.mustCreateJob(jobRequest("udp port 53", "30s", d))
	if j.ID != 1 {
		t.Errorf("first job stored after the refused ones: id %d, want 1", j.ID)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/api/v1/jobs/999", http.StatusNotFound, ""},
		{"POST", "/api/v1/jobs/999/cancel", http.StatusNotFound, ""},
		{"GET", fmt.Sprintf("/api/v1/jobs/%d/runs/nosuchdevice/pcap", j.ID), http.StatusNotFound, ""},
		{"GET", fmt.Sprintf("/api/v1/jobs/%d/runs/%s/pcap", j.ID, d.id), http.StatusConflict, "run is queued: its pcap is not uploaded yet"},
	} {
		code, raw, _ := b.con.admin.do(tc.method, tc.path, nil, nil)
		if code != tc.code || jobError(t, raw) == "" || !strings.Contains(jobError(t, raw), tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, raw, tc.code, tc.want)
		}
	}
	// A queued run is canceled at once; then the job has ended.
	var cj jobView
	b.con.admin.mustJSON("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", j.ID), nil, nil, 200, &cj)
	r := cj.run(t, d.id)
	if _, _, reason := r.last(); r.State != "canceled" || reason != "canceled before the device accepted it" || cj.State != "done" {
		t.Errorf("cancel of a queued job: job %s, run %s; want done, canceled with %q", cj.State, r, "canceled before the device accepted it")
	}
	mustTransitions(t, j, r, "queued", "canceled")
	code, raw, _ := b.con.admin.do("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", j.ID), nil, nil)
	if want := fmt.Sprintf("job %d has ended: nothing to cancel", j.ID); code != http.StatusConflict || jobError(t, raw) != want {
		t.Errorf("second cancel: %d %s, want 409 %q", code, raw, want)
	}
	if after := b.mustJob(j.ID); !cmp.Equal(after, cj) {
		t.Errorf("the refused cancel changed the job:\n%+v\nwas\n%+v", after, cj)
	}
	b.con.admin.mustJSON("GET", "/api/v1/jobs", nil, nil, 200, &list)
	ids := []int64{}
	for _, j := range list.Jobs {
		ids = append(ids, j.ID)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	if diff := cmp.Diff([]int64{1}, ids); diff != "" {
		t.Errorf("jobs stored (-want +got):\n%s", diff)
	}
}

// TestJobStopConditions: a job ends at its packet limit, and at its byte
// limit, before its duration, with the first packets it matched; a
// standing capture on the same interface runs through both jobs and
// loses nothing.
func TestJobStopConditions(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tcpdump", "capinfos")
	b := mustJobBed(t, 1, true)
	d := b.devs[0]
	standing := map[string]any{"generation": 0, "captures": []map[string]any{{
		"name": "standing", "interface": jobTap, "filter": "udp", "output": map[string]any{"dir": filepath.Join(b.tmp, "standing")},
	}}}
	b.con.admin.mustJSON("PUT", "/api/v1/devices/"+d.id+"/captures", standing, map[string]string{"If-Match": "0"}, 200, nil)
	d.agent.mustWaitRunning(t, "standing", 1, 15*time.Second)
	var all [][]byte

	for _, tc := range []struct {
		name   string
		limit  map[string]any
		frames [][]byte
	}{
		{"max_packets", map[string]any{"max_packets": 5}, append(jobUDP(d, 20, 200, 1), jobFrames(t, d, 0)...)},
		{"max_bytes", map[string]any{"max_bytes": 4096}, jobUDP(d, 20, 500, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := jobRequest(jobFilter, "5m", d)
			for k, v := range tc.limit {
				req[k] = v
			}
			j := b.mustCreateJob(req)
			b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
			mustITSend(t, d.pair.A, tc.frames)
			all = append(all, tc.frames...)
			started := time.Now()
			r := b.mustWaitRun(j.ID, d.id, 15*time.Second, "finished with its result", func(r runView) bool {
				return r.ended() && (r.Result != nil || r.State != "finished")
			})
			mustTransitions(t, j, r, "queued", "accepted", "running", "uploading", "finished")
			path := b.mustDownload(j, r)
			t.Logf("%s: finished %v after the frames were sent, with %d packets in %d bytes", tc.name, time.Since(started).Round(time.Millisecond), r.Packets, r.Result.Size)
			got := jobPackets(t, path)
			want := itTcpdumpSelect(t, tc.frames, jobFilter, 1<<20)
			if mp, ok := tc.limit["max_packets"].(int); ok && len(got) != mp {
				t.Errorf("the pcap of a job with max_packets %d holds %d packets", mp, len(got))
			}
			if mb, ok := tc.limit["max_bytes"].(int); ok && (r.Result.Size > int64(mb) || len(got) == 0 || len(got) >= len(want)) {
				t.Errorf("the pcap of a job with max_bytes %d: %d bytes, %d of the %d packets that match", mb, r.Result.Size, len(got), len(want))
			}
			if uint64(len(got)) != r.Packets || len(got) > len(want) {
				t.Fatalf("the pcap holds %d packets, the run says %d, %d were sent that match", len(got), r.Packets, len(want))
			}
			for i := range got {
				if !cmp.Equal(got[i].Data, want[i]) {
					t.Errorf("packet %d is not the %dth frame that matched", i, i)
				}
			}
		})
	}
	// The standing capture saw every UDP frame while the jobs came and
	// went on its interface.
	n := uint64(len(itTcpdumpSelect(t, all, "udp", 1<<20)))
	mustITWaitFor(t, 10*time.Second, fmt.Sprintf("the standing capture's %d packets", n), func() (bool, string) {
		st, err := d.agent.status(t)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range st.Captures {
			if c.Name == "standing" {
				return c.Written == n && c.State == "running", fmt.Sprintf("%+v", c)
			}
		}
		return false, fmt.Sprintf("%+v", st.Captures)
	})
}

// TestJobAgentStopped: SIGTERM to the agent mid-run stops the capture,
// finishes and uploads the file, and ends the run failed with the
// reason, before the agent exits cleanly.
func TestJobAgentStopped(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	requireTools(t, "tcpdump", "capinfos")
	b := mustJobBed(t, 1, true)
	d := b.devs[0]
	req := jobRequest(jobFilter, "5m", d)
	req["max_bytes"] = 4 << 20
	j := b.mustCreateJob(req)
	b.mustWaitRun(j.ID, d.id, 15*time.Second, "running", inState("running"))
	sent := append(jobUDP(d, 30, 200, 5), jobFrames(t, d, 1)...)
	mustITSend(t, d.pair.A, sent)
	n := uint64(len(itTcpdumpSelect(t, sent, jobFilter, 1<<20)))
	b.mustWaitRun(j.ID, d.id, 10*time.Second, fmt.Sprintf("%d packets", n), func(r runView) bool { return r.Packets == n })
	d.agent.proc.mustStop(t)
	// The end was reported before the agent exited.
	r := b.mustJob(j.ID).run(t, d.id)
	const stopped = "the agent was stopped during the run"
	if _, _, reason := r.last(); r.State != "failed" || reason != stopped || r.Result == nil {
		t.Fatalf("run after SIGTERM to its agent: %s\nwant failed with %q and its result", r, stopped)
	}
	mustNoRepeats(t, r)
	mustHoldExactly(t, b.mustDownload(j, r), sent, jobFilter, 1<<20)
	if left := jobAttached(t, d); len(left) != 0 {
		t.Errorf("attached after the agent stopped: %v", left)
	}
	if _, err := os.Stat(filepath.Join(d.state, "jobs", fmt.Sprint(j.ID))); !os.IsNotExist(err) {
		t.Errorf("the run's directory is still in the agent's spool after its end was reported: %v", err)
	}
}

// TestJobOverBudget: a run whose max_bytes does not fit in the agent's
// jobs.max_bytes is accepted and failed at once, with the sentence that
// says what to change, and captures nothing.
func TestJobOverBudget(t *testing.T) {
	skipInKernelMatrix(t, jobSkip)
	b := mustJobBed(t, 1, false)
	d := b.devs[0]
	mustITWriteFile(t, d.cfg, "http:\n  listen: 127.0.0.1:19273\njobs:\n  max_bytes: 2MiB\n")
	d.mustStartAgent(t)
	req := jobRequest(jobFilter, "1m", d)
	req["max_bytes"] = 4 << 20
	j := b.mustCreateJob(req)
	r := b.mustWaitRun(j.ID, d.id, 15*time.Second, "failed", func(r runView) bool { return r.ended() })
	mustTransitions(t, j, r, "queued", "accepted", "failed")
	want := fmt.Sprintf("job %d needs up to 4.0 MiB but the agent's job budget has 2.0 MiB left (jobs.max_bytes 2.0 MiB, 0 B held): lower max_bytes or raise jobs.max_bytes", j.ID)
	if _, _, reason := r.last(); r.State != "failed" || reason != want || r.Error != want || r.Result != nil || r.Packets != 0 {
		t.Errorf("run over the agent's budget: %s\nwant failed with %q, nothing captured", r, want)
	}
	d.mustSpoolEmpty(t, j.ID)
}
