package web

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

var update = flag.Bool("update", false, "write the screenshots to testdata/screenshots")

// The browser is started once for the whole package; each test gets a tab
// of its own (its own sessionStorage, since each test serves on its own
// port, its own origin).
var shared struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	dir    string
	path   string
	err    error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if shared.cancel != nil {
		shared.cancel()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var errNoChromium = errors.New("no chromium on PATH (apt-get install chromium, or run hack/deps.sh)")

func startBrowser() {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			shared.path = p
			break
		}
	}
	if shared.path == "" {
		shared.err = errNoChromium
		return
	}
	dir, err := os.MkdirTemp("", "ringtap-web-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	shared.dir = dir
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(shared.path),
		chromedp.NoSandbox, // tests run as root
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // start the browser, with no timeout on it
		bcancel()
		acancel()
		shared.err = fmt.Errorf("start %s: %w", shared.path, err)
		return
	}
	shared.ctx = bctx
	shared.cancel = func() { bcancel(); acancel() }
}

// tab is one browser tab on a fake console.
type tab struct {
	t    *testing.T
	ctx  context.Context
	url  string
	api  *fakeAPI
	mu   sync.Mutex
	errs []string // JavaScript exceptions and CSP violations
}

// mustTab opens a tab on a fresh fake console with the page under test.
// It skips without chromium (fails under CI=true).
func mustTab(t *testing.T, api *fakeAPI) *tab {
	t.Helper()
	mustChromium(t)
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)
	tb := mustTabAt(t, srv.URL)
	tb.api = api
	return tb
}

// mustChromium starts the shared browser, or skips the test without one
// (fails it under CI=true).
func mustChromium(t *testing.T) {
	t.Helper()
	shared.once.Do(startBrowser)
	if errors.Is(shared.err, errNoChromium) {
		testbedtest.SkipOrFail(t, "%v", shared.err)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
}

// mustTabAt opens a tab for the page served at url.
func mustTabAt(t *testing.T, url string) *tab {
	t.Helper()
	mustChromium(t)
	tb := &tab{t: t, url: url}
	ctx, cancel := chromedp.NewContext(shared.ctx, chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancelTimeout)
	tb.ctx = ctx
	tb.do(chromedp.EmulateViewport(1280, 800))
	t.Cleanup(tb.checkErrors)
	return tb
}

func (tb *tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		tb.errs = append(tb.errs, "exception: "+msg)
	case *log.EventEntryAdded:
		// Network entries are the API's 401, 404, 409 and 422 the tests
		// ask for; anything the page's own code or the CSP logs is a bug.
		if e.Entry.Source != log.EntrySourceNetwork && e.Entry.Level == log.EntryLevelError {
			tb.errs = append(tb.errs, fmt.Sprintf("%s: %s", e.Entry.Source, e.Entry.Text))
		}
	}
}

func (tb *tab) checkErrors() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errs {
		tb.t.Errorf("browser: %s", e)
	}
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression and returns its result as T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true, for up to 8 s.
func (tb *tab) waitFor(what, predicate string) {
	tb.t.Helper()
	tb.waitWithin(8*time.Second, what, predicate)
}

// waitWithin polls a JavaScript predicate until it is true, for up to d.
func (tb *tab) waitWithin(d time.Duration, what, predicate string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		tb.t.Fatalf("waiting %s for %s (%s): %v", d, what, predicate, err)
	}
}

// text is the visible text of the first element the CSS selector finds, or
// "" without one.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(document.querySelector(%q)||{innerText:""}).innerText.trim()`, sel))
}

func (tb *tab) visible(sel string) bool {
	tb.t.Helper()
	return eval[bool](tb, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.checkVisibility(); })()`, sel))
}

// fill replaces the value of an input or textarea by typing, as a person
// would (input events and all).
func (tb *tab) fill(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Focus(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

func (tb *tab) open(fragment string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.url + "/" + fragment))
}

// signIn opens the page and signs in with the fake console's token.
func (tb *tab) signIn(fragment string) {
	tb.t.Helper()
	tb.open(fragment)
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("#signin-token")),
		chromedp.SendKeys(chromedp.CSS("#signin-token"), fakeToken),
		chromedp.Click(chromedp.CSS("#signin-submit")),
		chromedp.WaitVisible(chromedp.CSS("#shell")),
	)
}

// screenshot saves the viewport as NAME.png in the test's artifact
// directory (kept under -outputdir with go test -artifacts), and with
// -update in testdata/screenshots, where the reviewed ones are kept.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	// Let the last render and any transition settle.
	tb.do(chromedp.Sleep(150 * time.Millisecond))
	b, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		tb.t.Fatalf("screenshot %s is no PNG: %v", name, err)
	}
	dirs := []string{tb.t.ArtifactDir()}
	if *update {
		dirs = append(dirs, filepath.Join("testdata", "screenshots"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.t.Fatal(err)
		}
		p := filepath.Join(d, name+".png")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		tb.t.Logf("screenshot %s", p)
	}
}

// mustFit1024 checks the page at a laptop's 1024×768, saves a screenshot
// of it as name, and goes back to 1280×800: the table does not scroll, no
// filter is cut, and the refresh state stays in the top bar.
func (tb *tab) mustFit1024(name, table string) {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(1024, 768))
	defer tb.do(chromedp.EmulateViewport(1280, 800))
	tb.waitFor("the layout at 1024 px", `document.documentElement.clientWidth === 1024`)
	if w := eval[int](tb, fmt.Sprintf(`(w => w.scrollWidth - w.clientWidth)(document.querySelector(%q).closest(".table-wrap"))`, table)); w > 0 {
		tb.t.Errorf("%s scrolls by %d px at 1024 px", table, w)
	}
	cut := eval[[]string](tb, `[...document.querySelectorAll("code.filter")].filter(c => c.checkVisibility() &&
		(c.scrollWidth > c.clientWidth || c.scrollHeight > c.clientHeight + 1)).map(c => c.innerText)`)
	if len(cut) > 0 {
		tb.t.Errorf("filters cut at 1024 px: %q", cut)
	}
	if !tb.visible("#refresh-state") || !strings.HasPrefix(tb.text("#refresh-state"), "Live") {
		tb.t.Errorf("refresh state at 1024 px %q (visible %v), want it shown", tb.text("#refresh-state"), tb.visible("#refresh-state"))
	}
	if w := eval[int](tb, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); w > 0 {
		tb.t.Errorf("the page scrolls sideways by %d px at 1024 px", w)
	}
	tb.screenshot(name)
}

// rowText is the text of each cell of the table row with data-key key.
func (tb *tab) rowText(table, key string) []string {
	tb.t.Helper()
	return eval[[]string](tb, fmt.Sprintf(`[...(document.querySelector(%q + ' tr[data-key=%q]') || {cells: []}).cells].map(c => c.innerText.trim())`, table, key))
}

func fixedNow() time.Time { return time.Now().Truncate(time.Second) }

func TestSignInShowsDevices(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.open("")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#signin-token")))
	if tb.visible("#shell") {
		t.Fatal("the devices show before sign-in")
	}

	// A wrong token is refused and not kept.
	tb.do(
		chromedp.SendKeys(chromedp.CSS("#signin-token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#signin-submit")),
	)
	tb.waitFor("the refusal", `document.querySelector("#signin-error").innerText.includes("did not accept")`)
	if got := eval[*string](tb, `sessionStorage.getItem("ringtap.admin_token")`); got != nil {
		t.Errorf("a refused token is kept in sessionStorage: %q", *got)
	}
	tb.screenshot("signin")

	tb.do(
		tb.fill("#signin-token", fakeToken),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("table.devices tbody tr")),
	)
	// What the list does not say comes from the heartbeats, just after.
	tb.waitFor("the heartbeats' details", `!!document.querySelector('table.devices tr[data-key=dev_b6t0r2z8] .badge.bad:not(.count)').checkVisibility()`)
	if got := eval[string](tb, `sessionStorage.getItem("ringtap.admin_token")`); got != fakeToken {
		t.Errorf("sessionStorage token = %q, want the admin token", got)
	}
	if got := eval[int](tb, `localStorage.length + document.cookie.length`); got != 0 {
		t.Errorf("the page keeps %d things in localStorage or cookies, want none", got)
	}

	for _, tc := range []struct {
		id, host, state, captures, drops string
		dup                              bool
		health                           string // the state cell after the state
		errorTitle                       string // the errors badge's title begins so
		notRunning                       string // under the captures count
	}{
		{"dev_7k2m9q4x", "edge-fra-01", "online", "3 / 3", "1,234", true, "", "", ""},
		{"dev_p3w8n1c5", "edge-fra-02", "online", "1 / 2", "0", true, "1 error", "capture ssh on eth0: failed: attach xdp to eth0", "ssh failed"},
		{"dev_b6t0r2z8", "lab-ams-07", "stale", "1 / 1", "2", false, "1 error needs re-enrollment", "the console refused the client certificate", ""},
		{"dev_q9e4h7j1", "old-sensor-3", "revoked", "0 / 1", "–", false, "", "", ""},
	} {
		t.Run(tc.host, func(t *testing.T) {
			cells := tb.rowText("table.devices", tc.id)
			if len(cells) != 7 {
				t.Fatalf("row %s: cells %q, want 7", tc.id, cells)
			}
			if !strings.HasPrefix(cells[0], tc.host) {
				t.Errorf("device cell %q, want it to begin with %q", cells[0], tc.host)
			}
			if got := strings.Contains(cells[0], "duplicate machine id"); got != tc.dup {
				t.Errorf("duplicate badge shown = %v, want %v (cell %q)", got, tc.dup, cells[0])
			}
			state, health, _ := strings.Cut(strings.Join(strings.Fields(cells[1]), " "), " ")
			if state != tc.state || health != tc.health {
				t.Errorf("state cell %q, want %q then %q", cells[1], tc.state, tc.health)
			}
			if got := eval[string](tb, fmt.Sprintf(`(document.querySelector('table.devices tr[data-key=%q] .badge.count') || {title: ""}).title`, tc.id)); !strings.HasPrefix(got, tc.errorTitle) {
				t.Errorf("errors badge title %q, want the first error, %q…", got, tc.errorTitle)
			}
			caps, notRunning, _ := strings.Cut(cells[2], "\n")
			cells[2] = caps
			if notRunning != tc.notRunning {
				t.Errorf("under the captures %q, want %q", notRunning, tc.notRunning)
			}
			badge := eval[string](tb, fmt.Sprintf(`document.querySelector('table.devices tr[data-key=%q] .badge.state').className`, tc.id))
			if !strings.Contains(badge, tc.state) {
				t.Errorf("state badge class %q, want it to name %q for its colour", badge, tc.state)
			}
			if cells[2] != tc.captures {
				t.Errorf("captures %q, want %q", cells[2], tc.captures)
			}
			if tc.state != "revoked" && cells[3] != tc.drops {
				t.Errorf("drops %q, want %q", cells[3], tc.drops)
			}
			if !strings.HasSuffix(cells[4], " ago") {
				t.Errorf("last heartbeat %q, want a time ago", cells[4])
			}
		})
	}
	if got := tb.text("table.devices tr[data-key=dev_7k2m9q4x] td:nth-child(5)"); !regexpMatch(`^\d+ s ago$`, got) {
		t.Errorf("last heartbeat of edge-fra-01 %q, want like \"4 s ago\"", got)
	}
	if got := tb.text(".summary"); !strings.Contains(got, "4 devices") || !strings.Contains(got, "2 online") ||
		!strings.Contains(got, "2 with errors") || !strings.Contains(got, "1 to re-enroll") {
		t.Errorf("summary %q, want 4 devices, 2 online, 2 with errors, 1 to re-enroll", got)
	}
	if got := eval[string](tb, `document.querySelector('table.devices tr[data-key=dev_p3w8n1c5] td:nth-child(3) > span').title`); got != "web: running\nssh: failed" {
		t.Errorf("captures title %q, want each capture's state", got)
	}
	tb.screenshot("devices")
	tb.mustFit1024("devices-1024", "table.devices")

	// The refresh every 5 s updates the rows in place: the same elements,
	// new numbers.
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('table.devices tr[data-key=dev_p3w8n1c5]').dataset.probe = "kept"`))
	api.update("dev_p3w8n1c5", func(d *fakeDevice) {
		d.LastHeartbeat = d.LastHeartbeat.Add(time.Second)
		d.Status.Captures[1].State = "running"
		d.Status.Captures[1].LastError = ""
		d.Status.Captures[1].RingDrops = 7
		d.Status.Errors = nil
	})
	tb.waitFor("the refresh", `document.querySelector('table.devices tr[data-key=dev_p3w8n1c5] td:nth-child(3)').innerText.trim() === "2 / 2"`)
	if got := tb.rowText("table.devices", "dev_p3w8n1c5"); got[1] != "online" || got[3] != "7" {
		t.Errorf("state and drops after the refresh %q and %q, want online with no error badge, and 7", got[1], got[3])
	}
	if got := eval[string](tb, `document.querySelector('table.devices tr[data-key=dev_p3w8n1c5]').dataset.probe || ""`); got != "kept" {
		t.Error("the refresh replaced the row instead of updating it")
	}

	// The keyboard opens a device from its name.
	tb.do(chromedp.Focus(chromedp.CSS("table.devices tr[data-key=dev_b6t0r2z8] a.host")), chromedp.KeyEvent("\r"))
	tb.waitFor("the device page", `location.hash === "#/devices/dev_b6t0r2z8" && !!document.querySelector(".facts dd")`)
}

func TestEmptyFleet(t *testing.T) {
	api := newFakeAPI(fixedNow())
	api.devices = nil
	tb := mustTab(t, api)
	tb.signIn("")
	tb.waitFor("the empty state", `[...document.querySelectorAll(".empty")].some(e => e.checkVisibility() && e.innerText.includes("No devices yet"))`)
	tb.screenshot("empty")
	tb.do(chromedp.Click(chromedp.CSS(".empty button")))
	tb.waitFor("the key dialog", `document.querySelector("#key-dialog").open`)
}

func TestDevicePageRejectedEdit(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/devices/dev_7k2m9q4x")
	tb.do(chromedp.WaitVisible(chromedp.CSS("table.captures tbody tr")))

	web := tb.rowText("table.captures", "web")
	want := []string{"web", "eth0", "tcp port 443 or tcp port 80", "256", "xdp", "in", "running", "18.7M", "4.12M", "0"}
	if len(web) < len(want) || strings.Join(web[:len(want)], "|") != strings.Join(want, "|") {
		t.Errorf("capture row web = %q, want %q", web, want)
	}
	if got := tb.rowText("table.captures", "mirror")[9]; got != "1,234" {
		t.Errorf("drops of mirror %q, want the console's dropped, 1,234 (ring 1,200 + copy 8 + write 26)", got)
	}
	if got := eval[string](tb, `document.querySelector('table.captures tr[data-key=mirror] td:nth-child(10) span').title`); got != "ring full: 1,200, not copied: 8, not written: 26" {
		t.Errorf("drops title of mirror %q", got)
	}
	if got := tb.text(".facts"); !strings.Contains(got, "expires in 41 d") || !strings.Contains(got, "eth1") {
		t.Errorf("facts %q, want the certificate expiry and the interfaces", got)
	}
	tb.screenshot("device")
	tb.mustFit1024("device-1024", "table.captures")

	// An invalid filter: the console's message appears under the filter.
	tb.do(
		chromedp.Click(chromedp.CSS(`table.captures tr[data-key=web] button[data-act=edit]`)),
		chromedp.WaitVisible(chromedp.CSS("#cf-filter")),
		tb.fill("#cf-filter", "tcp prot 443"),
		chromedp.Click(chromedp.CSS("#capture-save")),
	)
	tb.waitFor("the filter's message", `document.querySelector("#cf-filter-error").innerText.includes("syntax error")`)
	msg := tb.text("#cf-filter-error")
	if !strings.HasPrefix(msg, `Compile filter "tcp prot 443"`) || strings.Contains(msg, "captures[0]") {
		t.Errorf("filter message %q, want the compiler's message without the path", msg)
	}
	if got := eval[string](tb, `document.querySelector("#cf-filter").getAttribute("aria-invalid") || ""`); got != "true" {
		t.Errorf("filter aria-invalid = %q, want true", got)
	}
	if got := eval[string](tb, `document.activeElement.id`); got != "cf-filter" {
		t.Errorf("focus on %q after the rejection, want the filter", got)
	}
	if got := tb.text("#cf-name-error"); got != "" {
		t.Errorf("the name shows %q, want no message", got)
	}
	tb.screenshot("validation")
	if api.putCount() != 0 {
		t.Fatalf("the console accepted %d lists, want none", api.putCount())
	}

	// Fixed: saved, and the table shows it.
	tb.do(
		tb.fill("#cf-filter", "tcp port 443"),
	)
	if got := tb.text("#cf-filter-error"); got != "" {
		t.Errorf("the message stays while typing: %q", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#capture-save")))
	tb.waitFor("the saved capture", `!document.querySelector("#capture-dialog").open && document.querySelector('table.captures tr[data-key=web] td:nth-child(3)').innerText.trim() === "tcp port 443"`)
	api.mu.Lock()
	d := api.devices[0]
	gen, c := d.Generation, d.Captures[0]
	api.mu.Unlock()
	if gen != 8 || c.Filter != "tcp port 443" || c.SnapLen != 256 || c.Hook != "xdp" || c.Output.Dir != "/var/lib/ringtap/web" {
		t.Errorf("stored generation %d, capture %+v, want generation 8 with only the filter changed", gen, c)
	}
	if got := tb.text(".facts"); !strings.Contains(got, "generation 8") {
		t.Errorf("facts %q, want generation 8", got)
	}
}

func TestDevicePageAddAndDelete(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/devices/dev_p3w8n1c5")
	tb.do(chromedp.WaitVisible(chromedp.CSS("table.captures tbody tr")))

	// The agent's errors are listed, and the failed capture says why.
	if got := tb.text(".agent-errors"); got != "The agent reports 1 error:\ncapture ssh on eth0: failed: attach xdp to eth0: device or resource busy" {
		t.Errorf("agent errors %q", got)
	}
	if got := tb.rowText("table.captures", "ssh"); got[0] != "ssh\nattach xdp to eth0: device or resource busy" || got[6] != "failed" {
		t.Errorf("failed capture %q, want its error under the name and the failed state", got)
	}
	tb.screenshot("device-errors")

	tb.do(
		chromedp.Click(chromedp.CSS("button.btn.primary:not([type=submit])")),
		chromedp.WaitVisible(chromedp.CSS("#cf-name")),
		chromedp.SendKeys(chromedp.CSS("#cf-name"), "icmp"),
		chromedp.SendKeys(chromedp.CSS("#cf-interface"), "eth0"),
		chromedp.SendKeys(chromedp.CSS("#cf-filter"), "icmp or icmp6"),
	)
	if got := eval[string](tb, `document.querySelector("#cf-dir").value`); got != "/var/lib/ringtap/icmp" {
		t.Errorf("output directory %q, want it to follow the name", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#capture-save")))
	tb.waitFor("the new row", `!!document.querySelector('table.captures tr[data-key=icmp]')`)
	if got := tb.rowText("table.captures", "icmp")[6]; got != "pending" {
		t.Errorf("state of a capture the agent has not seen %q, want pending", got)
	}
	// The agent applies it and says so in a heartbeat: after a save the
	// page looks every second, not every 5 s.
	api.update("dev_p3w8n1c5", func(d *fakeDevice) {
		d.LastHeartbeat = d.LastHeartbeat.Add(2 * time.Second)
		d.Status.AppliedGeneration = d.Generation
		d.Status.Captures = append(d.Status.Captures, agent.CaptureStatus{Name: "icmp", Interface: "eth0", Hook: "xdp", State: "running", Seen: 40, Captured: 3})
	})
	tb.waitWithin(3*time.Second, "the heartbeat", `document.querySelector('table.captures tr[data-key=icmp] td:nth-child(7)').innerText.trim() === "running"`)
	if got := tb.text(".section-head .muted"); got != "2 of 3 captures running" {
		t.Errorf("captures note %q, want 2 of 3 captures running", got)
	}

	// Delete asks first; Cancel keeps it.
	tb.do(chromedp.Click(chromedp.CSS(`table.captures tr[data-key=ssh] button[data-act=delete]`)))
	tb.waitFor("the confirmation", `document.querySelector("#confirm-dialog").open`)
	if got := eval[string](tb, `document.activeElement.id`); got != "confirm-cancel" {
		t.Errorf("focus in the confirmation on %q, want Cancel", got)
	}
	tb.do(chromedp.KeyEvent("\x1b")) // Escape
	tb.waitFor("the dialog to close", `!document.querySelector("#confirm-dialog").open`)
	if api.putCount() != 1 {
		t.Fatalf("%d saves after a cancelled delete, want 1", api.putCount())
	}
	tb.do(chromedp.Click(chromedp.CSS(`table.captures tr[data-key=ssh] button[data-act=delete]`)))
	tb.waitFor("the confirmation", `document.querySelector("#confirm-dialog").open`)
	tb.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.waitFor("the row to go", `!document.querySelector('table.captures tr[data-key=ssh]')`)
	api.mu.Lock()
	var names []string
	for _, c := range api.devices[1].Captures {
		names = append(names, c.Name)
	}
	api.mu.Unlock()
	if strings.Join(names, ",") != "web,icmp" {
		t.Errorf("stored captures %v, want web,icmp", names)
	}
}

func TestDevicePageConflict(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/devices/dev_7k2m9q4x")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("table.captures tbody tr")),
		chromedp.Click(chromedp.CSS(`table.captures tr[data-key=dns] button[data-act=edit]`)),
		chromedp.WaitVisible(chromedp.CSS("#cf-snaplen")),
		chromedp.SendKeys(chromedp.CSS("#cf-snaplen"), "1500"),
	)
	// Someone else saves meanwhile.
	api.update("dev_7k2m9q4x", func(d *fakeDevice) {
		d.Generation++
		d.Captures[0].Filter = "tcp port 443"
	})
	tb.do(chromedp.Click(chromedp.CSS("#capture-save")))
	tb.waitFor("the conflict", `!!document.querySelector("#capture-reload")`)
	if got := tb.text("#capture-general"); !strings.Contains(got, "Someone else changed") || strings.Contains(got, "null") {
		t.Errorf("conflict message %q", got)
	}
	tb.screenshot("conflict")
	tb.do(chromedp.Click(chromedp.CSS("#capture-reload")))
	tb.waitFor("the reload", `document.querySelector("#capture-general").innerText.includes("Reloaded generation 8")`)
	if got := eval[string](tb, `document.querySelector("#cf-snaplen").value`); got != "1500" {
		t.Errorf("snaplen after the reload %q, want the edit kept", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#capture-save")))
	tb.waitFor("the save", `!document.querySelector("#capture-dialog").open`)
	api.mu.Lock()
	d := api.devices[0]
	gen, web, dns := d.Generation, d.Captures[0], d.Captures[1]
	api.mu.Unlock()
	if gen != 9 || web.Filter != "tcp port 443" || dns.SnapLen != 1500 {
		t.Errorf("generation %d, web filter %q, dns snaplen %d: want 9, the other's change kept, and ours", gen, web.Filter, dns.SnapLen)
	}
}

func TestRevoke(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("#/devices/dev_b6t0r2z8")
	tb.do(chromedp.WaitVisible(chromedp.CSS(".facts dd")))

	// A certificate that cannot be renewed: said twice, with the way out.
	if got := tb.text(".agent-errors"); !strings.HasPrefix(got, "The agent reports 1 error:\nthe console refused the client certificate") ||
		!strings.Contains(got, "Its certificate cannot be renewed any more") {
		t.Errorf("agent errors %q, want the refusal and what to do", got)
	}
	if got := tb.text(".facts"); !strings.Contains(got, "needs re-enrollment") {
		t.Errorf("facts %q, want the certificate to need re-enrollment", got)
	}
	// No "dropped" in this status: the page sums ring, copy and write drops.
	if got := tb.rowText("table.captures", "all")[9]; got != "2" {
		t.Errorf("drops of all %q, want the 2 copy failures", got)
	}
	tb.do(chromedp.Click(chromedp.CSS(".agent-errors button[data-act=reenroll]")))
	tb.waitFor("the key dialog", `document.querySelector("#key-dialog").open`)
	tb.do(chromedp.KeyEvent("\x1b"))
	tb.waitFor("the dialog to close", `!document.querySelector("#key-dialog").open`)

	tb.do(chromedp.Click(chromedp.CSS("button.danger-outline")))
	tb.waitFor("the confirmation", `document.querySelector("#confirm-dialog").open`)
	if got := tb.text("#confirm-title"); got != "Revoke lab-ams-07?" {
		t.Errorf("confirmation %q", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.waitFor("the revoked state", `document.querySelector(".view-head .badge.state").innerText.trim() === "revoked"`)
	if tb.visible("button.danger-outline") {
		t.Error("a revoked device still offers Revoke")
	}
	if got := tb.text(".agent-errors"); strings.Contains(got, "cannot be renewed") {
		t.Errorf("a revoked device is still to re-enroll: %q", got)
	}
}

func TestInstallKey(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("")
	tb.do(chromedp.WaitVisible(chromedp.CSS("table.devices tbody tr")))
	_, err := chromedp.CallBrowser(tb.ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "clipboard-write"}, Setting: browser.PermissionSettingGranted, Origin: tb.url,
	})
	if err != nil {
		t.Fatalf("grant clipboard-write: %v", err)
	}
	_, err = chromedp.CallBrowser(tb.ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "clipboard-read"}, Setting: browser.PermissionSettingGranted, Origin: tb.url,
	})
	if err != nil {
		t.Fatalf("grant clipboard-read: %v", err)
	}

	tb.do(
		chromedp.Click(chromedp.CSS("#new-key")),
		chromedp.WaitVisible(chromedp.CSS("#kf-note")),
		chromedp.SetValue(chromedp.CSS("#kf-expires"), "168h"),
		chromedp.SendKeys(chromedp.CSS("#kf-note"), "rack B"),
		chromedp.Click(chromedp.CSS("#key-create")),
		chromedp.WaitVisible(chromedp.CSS("#kr-command")),
	)
	if req, ok := api.lastKeyRequest(); !ok || req.ExpiresIn != "168h" || req.Note != "rack B" {
		t.Errorf("key request %+v, want expires_in 168h and the note", req)
	}
	if got := tb.text("#kr-command"); got != fakeEnrollCommand {
		t.Errorf("command %q, want the console's %q", got, fakeEnrollCommand)
	}
	// It wraps between words only: no flag, key or fingerprint is split,
	// none runs out of the box, and each flag begins a line.
	broken := eval[[]string](tb, `(() => {
		const pre = document.querySelector("#kr-command"), out = [];
		const words = [...pre.querySelectorAll(".word")];
		if (words.map(w => w.textContent).join(" ") !== pre.textContent) out.push("words " + words.map(w => w.textContent));
		for (const w of words) {
			const r = document.createRange();
			r.selectNodeContents(w);
			if (r.getClientRects().length !== 1) out.push(w.textContent);
		}
		if (pre.scrollWidth > pre.clientWidth) out.push("scrolls by " + (pre.scrollWidth - pre.clientWidth) + " px");
		return out;
	})()`)
	if len(broken) > 0 {
		t.Errorf("the command breaks inside %q", broken)
	}
	lines := eval[[]string](tb, `(() => {
		const lines = new Map();
		for (const w of document.querySelectorAll("#kr-command .word")) {
			const top = Math.round(w.getBoundingClientRect().top);
			lines.set(top, [...(lines.get(top) || []), w.textContent]);
		}
		return [...lines.values()].map(l => l.join(" "));
	})()`)
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "--") && !strings.HasPrefix(l, "sha256:") {
			t.Errorf("line %q of the command begins with no flag (lines %q)", l, lines)
		}
	}
	if got := tb.text("#kr-expiry"); !strings.Contains(got, "expires in 7 d") {
		t.Errorf("expiry %q, want in 7 d", got)
	}
	tb.do(chromedp.Click(chromedp.CSS("#kr-copy")))
	tb.waitFor("the copy", `document.querySelector("#kr-copy").innerText === "Copied"`)
	if got := eval[string](tb, `navigator.clipboard.readText()`); got != fakeEnrollCommand {
		t.Errorf("clipboard %q, want the command", got)
	}
	tb.screenshot("install-key")
	tb.do(chromedp.KeyEvent("\x1b"))
	tb.waitFor("the dialog to close", `!document.querySelector("#key-dialog").open`)
}

func TestSignOutAndUnauthorized(t *testing.T) {
	api := newFakeAPI(fixedNow())
	tb := mustTab(t, api)
	tb.signIn("")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("table.devices tbody tr")),
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#signin-token")),
	)
	if got := eval[*string](tb, `sessionStorage.getItem("ringtap.admin_token")`); got != nil {
		t.Errorf("token after sign out %q, want none", *got)
	}
	if tb.visible("#shell") || eval[int](tb, `document.querySelectorAll("table.devices").length`) != 0 {
		t.Error("the devices stay on the page after sign out")
	}
	tb.do(chromedp.Reload())
	tb.do(chromedp.WaitVisible(chromedp.CSS("#signin-token")))

	// A console that stops accepting the token sends the page back to the
	// prompt, with a sentence saying why.
	tb.signIn("")
	tb.do(chromedp.WaitVisible(chromedp.CSS("table.devices tbody tr")))
	api.setToken("rotated")
	tb.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/devices/dev_7k2m9q4x"`))
	tb.waitFor("the prompt", `document.querySelector("#signin").checkVisibility()`)
	if got := tb.text("#signin-error"); !strings.Contains(got, "admin token") {
		t.Errorf("prompt message %q, want the console's sentence", got)
	}
	if got := eval[*string](tb, `sessionStorage.getItem("ringtap.admin_token")`); got != nil {
		t.Errorf("token after a 401 %q, want none", *got)
	}
}
