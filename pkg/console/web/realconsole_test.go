package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// TestRealConsole is the walk of issue 11 on the real console (admin API
// over HTTPS, SQLite store) with a device that speaks the agent API with
// its own certificate: sign in with the token, see the device and its
// running capture, add a new capture with a filter the console's compiler
// refuses and read why under the field, fix it, and once the agent has
// fetched the new generation and says in a heartbeat that it runs it, see
// the new capture running on the device's page and in the list. Last, an
// install key whose command names this console and its CA.
func TestRealConsole(t *testing.T) {
	skipInKernelMatrix(t)
	rc := mustRealConsole(t)
	ctx := context.Background()
	a := mustEnrollJobAgent(t, rc, "real-sensor-1", []string{"eth0", "eth1"})
	// An admin configured one capture before; the agent runs it.
	web := store.Capture{Name: "web", Interface: "eth0", Filter: "tcp port 443", Output: store.Output{Dir: "/var/lib/ringtap/web"}}
	if _, err := rc.st.PutCaptures(ctx, a.id, 0, []store.Capture{web}, time.Now()); err != nil {
		t.Fatal(err)
	}
	webRunning := agent.CaptureStatus{Name: "web", Interface: "eth0", Hook: "xdp", State: "running", Seen: 1000, Matched: 903, Captured: 900, RingDrops: 3, Written: 898, WriteDrops: 2}
	a.mustHeartbeat(1, webRunning)

	tb := rc.mustTab(t)
	tb.open("")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("#signin-token")),
		chromedp.SendKeys(chromedp.CSS("#signin-token"), rc.token),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("table.devices tbody tr")),
	)
	capsCell := fmt.Sprintf(`document.querySelector('table.devices tr[data-key=%q] td:nth-child(3)')`, a.id)
	tb.waitFor("the heartbeat's captures", capsCell+`.querySelector("span").title === "web: running"`)
	if cells := tb.rowText("table.devices", a.id); len(cells) != 7 || !strings.HasPrefix(cells[0], "real-sensor-1") || cells[1] != "online" || cells[2] != "1 / 1" || cells[3] != "5" {
		t.Errorf("device row %q, want real-sensor-1, online, 1 / 1 running, 5 drops", cells)
	}

	tb.do(chromedp.Click(chromedp.CSS("table.devices a.host")))
	tb.do(chromedp.WaitVisible(chromedp.CSS(`table.captures tr[data-key=web]`)))
	if got := tb.text(".facts"); !strings.Contains(got, "generation 1 · applied") {
		t.Errorf("facts %q, want generation 1 applied", got)
	}

	// A new capture, with a filter the console's compiler refuses.
	tb.do(
		chromedp.Click(chromedp.CSS(".section-head button.btn.primary")),
		chromedp.WaitVisible(chromedp.CSS("#cf-name")),
	)
	if got := tb.text("#capture-title"); got != "Add capture" {
		t.Fatalf("dialog %q, want Add capture", got)
	}
	tb.do(
		chromedp.SendKeys(chromedp.CSS("#cf-name"), "dns"),
		chromedp.SendKeys(chromedp.CSS("#cf-interface"), "eth1"),
		chromedp.SendKeys(chromedp.CSS("#cf-filter"), "udp prot 53"),
		chromedp.Click(chromedp.CSS("#capture-save")),
	)
	tb.waitFor("the console's message", `document.querySelector("#cf-filter-error").innerText.includes("syntax error")`)
	if got := tb.text("#cf-filter-error"); !strings.HasPrefix(got, `Compile filter "udp prot 53": can't parse filter expression: syntax error`) {
		t.Errorf("message under the filter %q, want the console's compiler's", got)
	}
	if got := eval[[]string](tb, `[...document.querySelectorAll("#capture-form .field-error:not(:empty)")].map(p => p.id)`); len(got) != 1 || got[0] != "cf-filter-error" {
		t.Errorf("messages under %q, want only under the filter", got)
	}
	if got := eval[string](tb, `document.querySelector("#cf-filter").getAttribute("aria-invalid") + " " + document.activeElement.id`); got != "true cf-filter" {
		t.Errorf("filter aria-invalid and focus %q, want true cf-filter", got)
	}
	if c, err := rc.st.GetCaptures(ctx, a.id); err != nil || c.Generation != 1 || len(c.Captures) != 1 {
		t.Fatalf("stored config after the refusal %+v, %v; want generation 1 with web only", c, err)
	}
	tb.screenshot("real-add-rejected")

	tb.do(
		tb.fill("#cf-filter", "udp port 53"),
		chromedp.Click(chromedp.CSS("#capture-save")),
	)
	tb.waitFor("the new capture", `!document.querySelector("#capture-dialog").open && !!document.querySelector('table.captures tr[data-key=dns]')`)
	if diff := cmp.Diff([]string{"dns", "eth1", "udp port 53", "262144", "auto", "in", "pending", "–", "–", "–"}, tb.rowText("table.captures", "dns")[:10]); diff != "" {
		t.Errorf("the new capture before the agent has it (-want +got):\n%s", diff)
	}
	c, err := rc.st.GetCaptures(ctx, a.id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Generation != 2 || len(c.Captures) != 2 || c.Captures[0].Name != "web" || c.Captures[1].Filter != "udp port 53" || c.Captures[1].Output.Dir != "/var/lib/ringtap/dns" {
		t.Fatalf("stored config %+v, want generation 2: web, then dns with its filter and directory", c)
	}

	// The agent: the long poll brings generation 2, it starts dns and
	// says so in its next heartbeat.
	var cfg console.ConfigResponse
	a.mustDo(http.StatusOK, "GET", console.ConfigPath+"?after=1&wait=5s", nil, &cfg)
	if cfg.Generation != 2 || len(cfg.Captures) != 2 || cfg.Captures[1].Name != "dns" {
		t.Fatalf("the agent got %+v, want generation 2 with dns", cfg)
	}
	a.mustHeartbeat(2, webRunning, agent.CaptureStatus{Name: "dns", Interface: "eth1", Hook: "xdp", State: "running", Seen: 420, Matched: 17, Captured: 17, Written: 17})
	tb.waitWithin(4*time.Second, "the new capture running", `document.querySelector('table.captures tr[data-key=dns] td:nth-child(7)').innerText.trim() === "running"`)
	if diff := cmp.Diff([]string{"dns", "eth1", "udp port 53", "262144", "auto → xdp", "in", "running", "420", "17", "0"}, tb.rowText("table.captures", "dns")[:10]); diff != "" {
		t.Errorf("the new capture running (-want +got):\n%s", diff)
	}
	if got := tb.text(".section-head .muted"); got != "2 of 2 captures running" {
		t.Errorf("captures note %q, want 2 of 2 captures running", got)
	}
	if got := tb.text(".facts"); !strings.Contains(got, "generation 2 · applied") {
		t.Errorf("facts %q, want generation 2 applied", got)
	}
	tb.screenshot("real-add-running")

	tb.do(chromedp.Click(chromedp.CSS(".crumbs a")))
	tb.waitFor("the list with the new capture", `(td => !!td && td.innerText.trim() === "2 / 2")(`+capsCell+`)`)
	tb.waitFor("the heartbeat's captures", capsCell+`.querySelector("span").title === "web: running\ndns: running"`)
	if cells := tb.rowText("table.devices", a.id); cells[1] != "online" || cells[3] != "5" {
		t.Errorf("device row %q, want online with no error and 5 drops", cells)
	}
	tb.screenshot("real-devices")

	tb.do(
		chromedp.Click(chromedp.CSS("#new-key")),
		chromedp.WaitVisible(chromedp.CSS("#kf-note")),
		chromedp.Click(chromedp.CSS("#key-create")),
		chromedp.WaitVisible(chromedp.CSS("#kr-command")),
	)
	cmd := tb.text("#kr-command")
	re := regexp.MustCompile(`^ringtap agent enroll --console (\S+) --key rtk_[a-z2-7]{52} --ca-fingerprint (\S+)$`)
	if m := re.FindStringSubmatch(cmd); m == nil || m[1] != rc.srv.AgentURL() || m[2] != rc.ca.Fingerprint() {
		t.Errorf("command %q, want this console's URL %s, a key and its CA %s", cmd, rc.srv.AgentURL(), rc.ca.Fingerprint())
	}
}

// mustHeartbeat sends the heartbeat of an agent that runs generation gen
// with captures in these states, and has no error to report.
func (a *jobAgent) mustHeartbeat(gen int64, caps ...agent.CaptureStatus) {
	a.t.Helper()
	a.mustDo(http.StatusNoContent, "POST", console.HeartbeatPath, console.Heartbeat{AppliedGeneration: gen, Hostname: a.hostname,
		AgentVersion: "test", MachineID: jobAgentMachineID, Interfaces: a.interfaces, Captures: caps, Errors: []string{}}, nil)
}

// realConsole is the console server on a SQLite store in a temporary
// data directory, with an admin token the store knows.
type realConsole struct {
	srv   *console.Server
	st    store.Store
	ca    *pki.CA
	dir   string
	token string
}

// mustRealConsole runs a console until the test ends.
func mustRealConsole(t *testing.T) *realConsole {
	t.Helper()
	mustChromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	ca, err := pki.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := console.OpenStore(ctx, dir, "", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	token, _ := pki.NewAdminToken()
	if err := st.CreateAdminToken(ctx, store.AdminToken{Hash: store.HashSecret(token), Name: "test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	srv, err := console.New(console.Config{
		Store: st, CA: ca, DataDir: dir,
		AgentListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		Web:    Handler(),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v", err)
		}
	})
	return &realConsole{srv: srv, st: st, ca: ca, dir: dir, token: token}
}

// mustTab opens a tab on the console's admin listener.
func (rc *realConsole) mustTab(t *testing.T) *tab {
	t.Helper()
	tb := mustTabAt(t, "https://"+rc.srv.AdminAddr())
	// The console's certificate is from its own CA, which the browser
	// does not know; the agents pin it, the test waves it through.
	if _, err := chromedp.Call(tb.ctx, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true}); err != nil {
		t.Fatalf("ignore certificate errors: %v", err)
	}
	return tb
}
