package web

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// jobForm is what a test types into the new job form.
type jobForm struct {
	devices    []string // ids to tick
	interfaces string
	filter     string
	duration   string
	packets    string
	size, unit string
	s3         string // an S3 destination
}

// fillJobForm types f into the new job form on a fresh page.
func (tb *tab) fillJobForm(f jobForm) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/jobs"`))
	tb.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/jobs/new"`))
	tb.waitFor("the device list", `document.querySelectorAll(".device-picks li").length > 0`)
	for _, id := range f.devices {
		tb.do(chromedp.Click(chromedp.CSS("#jf-dev-" + id)))
	}
	for _, x := range []struct{ sel, v string }{
		{"#jf-interfaces", f.interfaces}, {"#jf-filter", f.filter}, {"#jf-duration", f.duration},
		{"#jf-max-packets", f.packets}, {"#jf-max-bytes", f.size},
	} {
		if x.v != "" {
			tb.do(tb.fill(x.sel, x.v))
		}
	}
	if f.unit != "" {
		tb.do(chromedp.SetValue(chromedp.CSS("#jf-max-bytes-unit"), f.unit))
	}
	if f.s3 != "" {
		tb.do(chromedp.Evaluate[chromedp.Void](`(d => { d.value = "s3"; d.dispatchEvent(new Event("change")); })(document.querySelector("#jf-destination"))`))
		tb.do(tb.fill("#jf-s3", f.s3))
	}
}

// grantClipboard lets the page write and read the clipboard.
func (tb *tab) grantClipboard() {
	tb.t.Helper()
	for _, p := range []string{"clipboard-write", "clipboard-read"} {
		_, err := chromedp.CallBrowser(tb.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: p}, Setting: browser.PermissionSettingGranted, Origin: tb.url,
		})
		if err != nil {
			tb.t.Fatalf("grant %s: %v", p, err)
		}
	}
}

// allowDownloads saves the browser's downloads in a directory of the test
// and returns a function that waits for the next one to complete and
// gives its path.
func (tb *tab) allowDownloads() func() string {
	tb.t.Helper()
	dir := tb.t.TempDir()
	var mu sync.Mutex
	names := map[string]string{}
	done := make(chan string, 8)
	err := chromedp.ListenBrowser(tb.ctx, func(ev any) {
		switch e := ev.(type) {
		case *browser.EventDownloadWillBegin:
			mu.Lock()
			names[e.GUID] = e.SuggestedFilename
			mu.Unlock()
		case *browser.EventDownloadProgress:
			if e.State == browser.DownloadProgressStateCompleted {
				mu.Lock()
				name := names[e.GUID]
				mu.Unlock()
				select {
				case done <- filepath.Join(dir, name):
				default:
				}
			}
		}
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	events := true
	if _, err := chromedp.CallBrowser(tb.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir, EventsEnabled: &events,
	}); err != nil {
		tb.t.Fatalf("allow downloads: %v", err)
	}
	return func() string {
		tb.t.Helper()
		select {
		case p := <-done:
			return p
		case <-time.After(10 * time.Second):
			entries, _ := os.ReadDir(dir)
			tb.t.Fatalf("no download completed in 10 s (%s holds %v)", dir, entries)
			return ""
		}
	}
}

// layout is where the runs table's columns and rows are on the screen.
func (tb *tab) layout() string {
	tb.t.Helper()
	return eval[string](tb, `JSON.stringify({
		cols: [...document.querySelectorAll("table.runs thead th")].map(th => Math.round(th.getBoundingClientRect().left)),
		rows: [...document.querySelectorAll("table.runs tbody")].map(b => { const r = b.getBoundingClientRect(); return [Math.round(r.top), Math.round(r.height)]; }),
		head: Math.round(document.querySelector("table.runs").getBoundingClientRect().top),
	})`)
}

// runCells is the text of the main row's cells of device's run.
func (tb *tab) runCells(device string) []string {
	tb.t.Helper()
	return eval[[]string](tb, fmt.Sprintf(`[...(document.querySelector('table.runs tbody[data-key=%q] tr.run-main') || {cells: []}).cells].map(c => c.innerText.trim())`, device))
}

func TestJobFormRejected(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/jobs/new")

	for _, tc := range []struct {
		name  string
		form  jobForm
		field string // the control whose message it is
		want  string // in the message under it
		post  bool   // the console was asked
	}{
		{"no device", jobForm{interfaces: "eth0"}, "jf-devices", "Pick at least one device.", false},
		{"no interface", jobForm{devices: []string{"dev_7k2m9q4x"}}, "jf-interfaces", "Name at least one interface", false},
		{"bad filter", jobForm{devices: []string{"dev_7k2m9q4x"}, interfaces: "eth0", filter: "udp prot 53", duration: "30s"},
			"jf-filter", `Compile filter "udp prot 53": can't parse filter expression: syntax error`, true},
		{"interface not on every device", jobForm{devices: []string{"dev_7k2m9q4x", "dev_p3w8n1c5"}, interfaces: "eth1"},
			"jf-interfaces", "Device dev_p3w8n1c5 (edge-fra-02) does not report interface eth1: it has eth0, lo.", true},
		{"duration above policy", jobForm{devices: []string{"dev_7k2m9q4x"}, interfaces: "eth0", duration: "2h"},
			"jf-duration", "Duration 2h0m0s is above the console's limit 1h (--job-max-duration): ask for 1h or less.", true},
		{"no S3 address", jobForm{devices: []string{"dev_7k2m9q4x"}, interfaces: "eth0", s3: "my-bucket"},
			"jf-s3", "Give the S3 address as s3://bucket/prefix/.", false},
		{"size above policy", jobForm{devices: []string{"dev_7k2m9q4x"}, interfaces: "eth0", size: "2", unit: "GiB"},
			"jf-max-bytes", "Max_bytes 2147483648 bytes is above the console's limit 1GiB (--job-max-bytes)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, before := api.jobPosts()
			tb.fillJobForm(tc.form)
			tb.do(chromedp.Click(chromedp.CSS("#jf-submit")))
			tb.waitFor("the message", fmt.Sprintf(`document.querySelector("#%s-error").innerText.includes(%q)`, tc.field, tc.want))
			if got := eval[string](tb, fmt.Sprintf(`document.querySelector("#%s").getAttribute("aria-invalid") || ""`, tc.field)); got != "true" {
				t.Errorf("%s aria-invalid = %q, want true", tc.field, got)
			}
			if n := eval[int](tb, `document.querySelectorAll(".field-error:not(:empty)").length`); n != 1 {
				t.Errorf("%d fields show a message, want 1", n)
			}
			if tc.post {
				if got := tb.text("#jf-error"); !strings.Contains(got, "The console did not start this job: see") {
					t.Errorf("message next to Start %q, want it to point at the field", got)
				}
			}
			// What was typed stays.
			checked := eval[[]string](tb, `[...document.querySelectorAll(".device-picks input:checked")].map(c => c.value)`)
			if !slices.Equal(checked, tc.form.devices) && !(len(checked) == 0 && len(tc.form.devices) == 0) {
				t.Errorf("devices ticked after the rejection %q, want %q", checked, tc.form.devices)
			}
			if got := eval[string](tb, `document.querySelector("#jf-filter").value`); got != tc.form.filter {
				t.Errorf("filter after the rejection %q, want %q", got, tc.form.filter)
			}
			accepted, after := api.jobPosts()
			if len(accepted) != 0 {
				t.Errorf("the console stored %d jobs, want none", len(accepted))
			}
			if asked := after > before; asked != tc.post {
				t.Errorf("the page asked the console: %v, want %v", asked, tc.post)
			}
			if tc.name == "bad filter" {
				if got := eval[string](tb, `document.activeElement.id`); got != "jf-filter" {
					t.Errorf("focus on %q after the rejection, want the filter", got)
				}
				tb.screenshot("job-rejected")
				// Typing clears the message.
				tb.do(tb.fill("#jf-filter", "udp port 53"))
				if got := tb.text("#jf-filter-error") + tb.text("#jf-error"); got != "" {
					t.Errorf("the message stays while typing: %q", got)
				}
			}
			if tc.name == "interface not on every device" {
				if got := tb.text("#jf-interfaces-warn"); !strings.Contains(got, "edge-fra-02 does not report eth1") {
					t.Errorf("warning before sending %q, want edge-fra-02 named", got)
				}
			}
		})
	}
}

func TestJobLifecycle(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/jobs")
	tb.waitFor("the empty state", `[...document.querySelectorAll(".empty")].some(e => e.checkVisibility() && e.innerText.includes("No capture jobs yet"))`)
	if got := eval[bool](tb, `document.querySelector("#nav-jobs").hasAttribute("aria-current")`); !got {
		t.Error("the Jobs entry of the top bar is not marked current")
	}
	tb.screenshot("jobs-empty")

	// The form: online devices first, revoked ones left out, each with
	// the interfaces it reports.
	tb.do(chromedp.Click(chromedp.CSS("#new-job")))
	tb.waitFor("the device list", `document.querySelectorAll(".device-picks li").length > 0`)
	order := eval[[]string](tb, `[...document.querySelectorAll(".device-picks li")].map(li => li.innerText.replace(/\s+/g, " ").trim())`)
	if diff := cmp.Diff([]string{"edge-fra-01 online eth0 eth1 lo", "edge-fra-02 online eth0 lo", "lab-ams-07 stale ens3"}, order); diff != "" {
		t.Errorf("devices offered (-want +got):\n%s", diff)
	}
	if got := tb.text(".picks-note"); !strings.Contains(got, "1 revoked device is not shown") {
		t.Errorf("note about revoked devices %q", got)
	}
	if got := tb.text(".suggest"); !strings.Contains(got, "Pick devices") {
		t.Errorf("interface suggestions before any device %q", got)
	}
	tb.do(
		chromedp.Click(chromedp.CSS("#jf-dev-dev_7k2m9q4x")),
		chromedp.Click(chromedp.CSS("#jf-dev-dev_p3w8n1c5")),
	)
	sugg := eval[[]string](tb, `[...document.querySelectorAll(".suggest button")].map(b => b.innerText.replace(/\s+/g, " ").trim())`)
	if diff := cmp.Diff([]string{"eth0", "lo", "eth1 1/2"}, sugg); diff != "" {
		t.Errorf("interfaces suggested for edge-fra-01 and edge-fra-02 (-want +got):\n%s", diff)
	}
	tb.do(chromedp.Click(chromedp.CSS(`.suggest button[data-iface=eth0]`)))
	if got := eval[string](tb, `document.querySelector("#jf-interfaces").value`); got != "eth0" {
		t.Errorf("interfaces after picking the suggestion %q, want eth0", got)
	}
	if got := tb.text("#jf-devices .legend-row"); !strings.Contains(got, "2 of 3 picked") {
		t.Errorf("device count %q, want 2 of 3 picked", got)
	}
	tb.do(
		tb.fill("#jf-filter", "udp port 53"),
		tb.fill("#jf-duration", "30s"),
		tb.fill("#jf-max-packets", "1000"),
		tb.fill("#jf-max-bytes", "10"),
	)
	tb.screenshot("job-form")
	tb.do(chromedp.Click(chromedp.CSS("#jf-submit")))
	tb.waitFor("the job page", `location.hash === "#/jobs/1" && document.querySelectorAll("table.runs tbody.run").length === 2`)
	reqs, _ := api.jobPosts()
	want := []fakeJobRequest{{Devices: []string{"dev_7k2m9q4x", "dev_p3w8n1c5"}, Interfaces: []string{"eth0"}, Filter: "udp port 53",
		Duration: "30s", MaxPackets: 1000, MaxBytes: 10 << 20, ExpiresIn: "10m", Destination: "console"}}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("POST /api/v1/jobs (-want +got):\n%s", diff)
	}

	// Queued: nothing counted yet, and when it expires.
	fra1, fra2 := "dev_7k2m9q4x", "dev_p3w8n1c5"
	if got := tb.runCells(fra1); len(got) != 8 || !strings.HasPrefix(got[1], "queued") || !strings.Contains(got[1], "expires in 10 min") || got[2] != "–" {
		t.Errorf("queued run %q, want queued, expires in 10 min, no counts", got)
	}
	if got := tb.text(".facts"); !strings.Contains(got, "30 s, 1,000 packets or 10 MiB, whichever comes first") || !strings.Contains(got, "udp port 53") {
		t.Errorf("facts %q, want the stop conditions and the filter", got)
	}
	if tb.visible(".live") {
		t.Error("a queued run offers the live command")
	}

	// The agent accepts and runs: the numbers come in as people read them.
	api.advance(t, 1, fra1, store.RunAccepted, "", jobapi.Progress{})
	api.advance(t, 1, fra1, store.RunRunning, "", jobapi.Progress{Packets: 1234, Bytes: 1_500_000, Size: 1_572_864})
	tb.waitFor("the running run", fmt.Sprintf(`document.querySelector('table.runs tbody[data-key=%q] .run-main td:nth-child(3)').innerText.trim() === "1,234"`, fra1))
	if got := tb.runCells(fra1); !strings.HasPrefix(got[1], "running") || got[3] != "1.43 MiB" || got[4] != "0" || got[5] != "1.50 MiB" || !strings.Contains(got[1], "of 30 s") {
		t.Errorf("running run %q, want running, x s of 30 s, 1.43 MiB, 0 drops, 1.50 MiB", got)
	}
	if c := eval[string](tb, fmt.Sprintf(`document.querySelector('table.runs tbody[data-key=%q] .badge.state').className`, fra1)); !strings.Contains(c, "running") {
		t.Errorf("badge class %q, want it to name running for its colour", c)
	}
	wantCmd := fmt.Sprintf(`curl -sN --cacert ca.pem -H "Authorization: Bearer $TOKEN" %s/api/v1/jobs/1/runs/%s/live | wireshark -k -i -`, tb.url, fra1)
	if got := tb.text(fmt.Sprintf(`table.runs tbody[data-key=%q] code.cmd`, fra1)); got != wantCmd {
		t.Errorf("live command\n%s\nwant\n%s", got, wantCmd)
	}
	tb.grantClipboard()
	tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`table.runs tbody[data-key=%q] button[data-act=copy]`, fra1))))
	tb.waitFor("the copy", `[...document.querySelectorAll("button[data-act=copy]")].some(b => b.innerText === "Copied")`)
	if got := eval[string](tb, `navigator.clipboard.readText()`); got != wantCmd {
		t.Errorf("clipboard %q, want the live command", got)
	}

	// A refresh with new numbers moves nothing on the page.
	before := tb.layout()
	api.advance(t, 1, fra1, store.RunRunning, "", jobapi.Progress{Packets: 123_456, Bytes: 98_765_432, Drops: 17, Size: 99_000_000})
	tb.waitFor("the new numbers", fmt.Sprintf(`document.querySelector('table.runs tbody[data-key=%q] .run-main td:nth-child(3)').innerText.trim() === "123,456"`, fra1))
	if after := tb.layout(); after != before {
		t.Errorf("the page moved when the numbers changed:\nbefore %s\nafter  %s", before, after)
	}
	if got := tb.runCells(fra1)[4]; got != "17" {
		t.Errorf("drops %q, want 17", got)
	}

	// One run finishes with its pcap, the other runs.
	pcap := mustPcapng(t, 25)
	api.advance(t, 1, fra2, store.RunAccepted, "", jobapi.Progress{})
	api.advance(t, 1, fra2, store.RunRunning, "", jobapi.Progress{Packets: 88, Bytes: 9_000, Size: 12_000})
	api.advance(t, 1, fra1, store.RunUploading, "", jobapi.Progress{Packets: 123_456, Bytes: 98_765_432, Drops: 17, Size: 99_000_000})
	api.attach(t, 1, fra1, pcap)
	api.advance(t, 1, fra1, store.RunFinished, "", jobapi.Progress{Packets: 123_456, Bytes: 98_765_432, Drops: 17, Size: 99_000_000})
	tb.waitFor("the download", fmt.Sprintf(`!!document.querySelector('table.runs tbody[data-key=%q] button[data-act=download]')`, fra1))
	steps := eval[[]string](tb, fmt.Sprintf(`[...document.querySelectorAll('table.runs tbody[data-key=%q] .timeline .step-state')].map(s => s.innerText)`, fra1))
	if diff := cmp.Diff([]string{"queued", "accepted", "running", "uploading", "finished"}, steps); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if got := tb.text(fmt.Sprintf(`table.runs tbody[data-key=%q] .timeline`, fra1)); !regexpMatch(`queued\s+\d\d:\d\d:\d\d`, got) {
		t.Errorf("timeline %q, want the time of each state", got)
	}
	if tb.visible(fmt.Sprintf(`table.runs tbody[data-key=%q] .live`, fra1)) {
		t.Error("a finished run still offers the live command")
	}
	if got := tb.text(".view-head .badge"); got != "running" {
		t.Errorf("job state %q, want running", got)
	}
	tb.screenshot("job-running")
	// A laptop's width still shows every column.
	tb.mustFit1024("job-1024", "table.runs")

	// Download: fetched with the token, saved under the console's name.
	next := tb.allowDownloads()
	tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`table.runs tbody[data-key=%q] button[data-act=download]`, fra1))))
	path := next()
	if filepath.Base(path) != "job-1-edge-fra-01.pcapng" {
		t.Errorf("saved as %s, want job-1-edge-fra-01.pcapng", filepath.Base(path))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pcap) {
		t.Errorf("the download has %d bytes, not the %d uploaded", len(got), len(pcap))
	}

	// Cancel: asked first; the running run stops and keeps its capture.
	tb.do(chromedp.Click(chromedp.CSS(".view-head button.danger-outline")))
	tb.waitFor("the confirmation", `document.querySelector("#confirm-dialog").open`)
	if got := tb.text("#confirm-title"); got != "Cancel job 1?" {
		t.Errorf("confirmation %q", got)
	}
	if got := tb.text("#confirm-cancel"); got != "Keep it running" {
		t.Errorf("the safe button says %q, want Keep it running", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.waitFor("the cancel", `document.querySelector(".view-head .badge").innerText.trim() === "canceling"`)
	if !api.cancelRequested(1) {
		t.Fatal("the console got no cancel")
	}
	if got := tb.text(".cancel-note"); !strings.Contains(got, "Cancel requested") {
		t.Errorf("cancel note %q", got)
	}
	if tb.visible(".view-head button.danger-outline") {
		t.Error("Cancel is still offered after the cancel")
	}
	part := mustPcapng(t, 10)
	api.advance(t, 1, fra2, store.RunUploading, "", jobapi.Progress{Packets: 10, Bytes: 700, Size: uint64(len(part))})
	api.attach(t, 1, fra2, part)
	api.advance(t, 1, fra2, store.RunCanceled, "canceled by an admin", jobapi.Progress{Packets: 10, Bytes: 700, Size: uint64(len(part))})
	tb.waitFor("the canceled run", fmt.Sprintf(`document.querySelector('table.runs tbody[data-key=%q] .badge.state').innerText.trim() === "canceled"`, fra2))
	if got := tb.text(fmt.Sprintf(`table.runs tbody[data-key=%q] .run-error`, fra2)); got != "canceled by an admin" {
		t.Errorf("reason %q, want canceled by an admin", got)
	}
	tb.waitFor("the job's end", `document.querySelector(".view-head .badge").innerText.trim() === "done" && !document.querySelector(".cancel-note").checkVisibility()`)
	if !tb.visible(fmt.Sprintf(`table.runs tbody[data-key=%q] button[data-act=download]`, fra2)) {
		t.Error("the canceled run's partial capture cannot be downloaded")
	}
	tb.screenshot("job-done")

	// The console deleted a result since (a space bound): no Download,
	// the reason where the button was.
	why := "the pcap of job 1 on device " + fra1 + " was deleted at 2026-12-02T02:31:39Z to keep the results within --job-results-max-bytes 50.0 GiB: results are deleted oldest first"
	api.deleteResult(1, fra1, why)
	deleted := fmt.Sprintf(`table.runs tbody[data-key=%q] .deleted`, fra1)
	tb.waitFor("the deleted result", `!!document.querySelector(`+fmt.Sprintf("%q", deleted)+`)`)
	if got := tb.text(deleted); got != "deleted" {
		t.Errorf("a deleted result shows %q, want deleted", got)
	}
	if got := eval[string](tb, `document.querySelector(`+fmt.Sprintf("%q", deleted)+`).title`); got != "T"+why[1:] {
		t.Errorf("its title %q, want the console's reason", got)
	}
	if tb.visible(fmt.Sprintf(`table.runs tbody[data-key=%q] button[data-act=download]`, fra1)) {
		t.Error("a deleted result still offers a download")
	}
	if got := tb.text(fmt.Sprintf(`table.runs tbody[data-key=%q] .run-gone`, fra1)); got != "T"+why[1:]+"." {
		t.Errorf("the run says %q about its deleted result, want the console's reason", got)
	}
	tb.screenshot("job-result-deleted")

	// Run again: the same job in the form.
	tb.do(chromedp.Click(chromedp.CSS(`.view-head a[href="#/jobs/new?from=1"]`)))
	tb.waitFor("the filled form", `document.querySelector("#jf-filter") && document.querySelector("#jf-filter").value === "udp port 53"`)
	form := eval[[]string](tb, `[
		[...document.querySelectorAll(".device-picks input:checked")].map(c => c.value).join(","),
		document.querySelector("#jf-interfaces").value, document.querySelector("#jf-duration").value,
		document.querySelector("#jf-max-packets").value, document.querySelector("#jf-max-bytes").value + " " + document.querySelector("#jf-max-bytes-unit").value]`)
	if diff := cmp.Diff([]string{fra1 + "," + fra2, "eth0", "30s", "1000", "10 MiB"}, form); diff != "" {
		t.Errorf("run again's form (-want +got):\n%s", diff)
	}

	// The list, newest first, with another admin's job that runs.
	id := api.mustAddJob(t, fakeJobRequest{Devices: []string{"dev_b6t0r2z8"}, Interfaces: []string{"ens3"}, Filter: "host 198.18.4.7", Duration: "5m"})
	api.advance(t, id, "dev_b6t0r2z8", store.RunAccepted, "", jobapi.Progress{})
	api.advance(t, id, "dev_b6t0r2z8", store.RunRunning, "", jobapi.Progress{Packets: 4_321, Bytes: 2_000_000, Size: 2_100_000})
	tb.do(chromedp.Click(chromedp.CSS("#nav-jobs")))
	tb.waitFor("the list", `document.querySelectorAll("table.jobs tbody tr").length === 2`)
	keys := eval[[]string](tb, `[...document.querySelectorAll("table.jobs tbody tr")].map(tr => tr.dataset.key)`)
	if diff := cmp.Diff([]string{"2", "1"}, keys); diff != "" {
		t.Errorf("jobs listed (-want +got):\n%s", diff)
	}
	row := tb.rowText("table.jobs", "1")
	if len(row) != 7 || row[0] != "Job 1" || !strings.HasPrefix(row[1], "done") || !strings.Contains(row[1], "1 finished · 1 canceled") ||
		row[2] != "edge-fra-01, edge-fra-02" || !strings.Contains(row[3], "udp port 53") || row[4] != "123,466" {
		t.Errorf("job 1 in the list %q", row)
	}
	if row := tb.rowText("table.jobs", "2"); len(row) != 7 || !strings.HasPrefix(row[1], "running") || row[2] != "lab-ams-07" || row[5] != "2.00 MiB" {
		t.Errorf("job 2 in the list %q", row)
	}
	if got := tb.text(".summary"); !strings.Contains(got, "2 jobs") || !strings.Contains(got, "1 active") {
		t.Errorf("summary %q, want 2 jobs, 1 active", got)
	}
	tb.screenshot("jobs-list")
	tb.do(chromedp.Click(chromedp.CSS(`table.jobs tr[data-key="2"] td:nth-child(3)`)))
	tb.waitFor("job 2", `location.hash === "#/jobs/2" && !!document.querySelector("table.runs tbody.run")`)
}

func TestJobCancelEnded(t *testing.T) {
	api := newFakeAPI(fixedNow())
	id := api.mustAddJob(t, fakeJobRequest{Devices: []string{"dev_7k2m9q4x"}, Interfaces: []string{"eth1"}, Duration: "10s"})
	api.advance(t, id, "dev_7k2m9q4x", store.RunAccepted, "", jobapi.Progress{})
	api.advance(t, id, "dev_7k2m9q4x", store.RunRunning, "", jobapi.Progress{Packets: 5, Bytes: 500, Size: 900})
	tb := mustTab(t, api)
	tb.signIn(fmt.Sprintf("#/jobs/%d", id))
	tb.waitFor("the running run", `!!document.querySelector("table.runs .badge.state.running")`)
	tb.do(chromedp.Click(chromedp.CSS(".view-head button.danger-outline")))
	tb.waitFor("the confirmation", `document.querySelector("#confirm-dialog").open`)
	// The run ends while the question is open.
	api.advance(t, id, "dev_7k2m9q4x", store.RunUploading, "", jobapi.Progress{Packets: 9, Bytes: 900, Size: 1400})
	api.advance(t, id, "dev_7k2m9q4x", store.RunFinished, "", jobapi.Progress{Packets: 9, Bytes: 900, Size: 1400})
	tb.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.waitFor("the console's answer", `document.querySelector("#banner").checkVisibility()`)
	if got := tb.text("#banner-text"); got != fmt.Sprintf("Job %d has ended: nothing to cancel.", id) {
		t.Errorf("banner %q, want the console's 409 sentence", got)
	}
	if api.cancelRequested(id) {
		t.Error("the console took a cancel of an ended job")
	}
	tb.waitFor("the finished run", `!!document.querySelector("table.runs .badge.state.finished") && !document.querySelector(".view-head button.danger-outline").checkVisibility()`)
}

func TestJobFromDevicePage(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/devices/dev_b6t0r2z8")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS(".facts dd")),
		chromedp.Click(chromedp.CSS(`.view-head a[href="#/jobs/new?devices=dev_b6t0r2z8"]`)),
	)
	tb.waitFor("the form", `!!document.querySelector("#jf-dev-dev_b6t0r2z8")`)
	if got := eval[[]string](tb, `[...document.querySelectorAll(".device-picks input:checked")].map(c => c.value)`); !slices.Equal(got, []string{"dev_b6t0r2z8"}) {
		t.Errorf("devices ticked %q, want lab-ams-07's", got)
	}
	if got := eval[string](tb, `document.activeElement.id`); got != "jf-interfaces" {
		t.Errorf("focus on %q, want the interfaces", got)
	}
	if got := tb.text(".suggest"); got != "ens3" {
		t.Errorf("suggested %q, want ens3", got)
	}

	// A job that is not there says so in the page.
	tb.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/jobs/99"`))
	tb.waitFor("the missing job", `[...document.querySelectorAll(".empty")].some(e => e.checkVisibility() && e.innerText.includes("There is no job 99"))`)
	if tb.visible("#banner") {
		t.Errorf("a banner for a missing job: %q", tb.text("#banner-text"))
	}
}
