package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// TestRealConsole runs the page against the real console server (its
// admin API over HTTPS, SQLite store) rather than the fake: sign in with
// a token the store knows, see a device, have the console's own validator
// reject a filter under the field, and create an install key whose command
// names this console's CA.
func TestRealConsole(t *testing.T) {
	rc := mustRealConsole(t)
	st, srv, ca, token := rc.st, rc.srv, rc.ca, rc.token
	ctx := context.Background()
	id := mustSeedDevice(t, st)

	tb := rc.mustTab(t)
	tb.open("")
	tb.do(
		chromedp.WaitVisible(chromedp.CSS("#signin-token")),
		chromedp.SendKeys(chromedp.CSS("#signin-token"), token),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("table.devices tbody tr")),
	)
	cells := tb.rowText("table.devices", id)
	if len(cells) < 4 || !strings.HasPrefix(cells[0], "real-sensor-1") || cells[1] != "online" || cells[2] != "1 / 1" || cells[3] != "5" {
		t.Errorf("device row %q, want real-sensor-1, online, 1 / 1 running, 5 drops", cells)
	}

	tb.do(chromedp.Click(chromedp.CSS("table.devices a.host")))
	tb.do(
		chromedp.WaitVisible(chromedp.CSS(`table.captures tr[data-key=web]`)),
		chromedp.Click(chromedp.CSS(`table.captures tr[data-key=web] button[data-act=edit]`)),
		chromedp.WaitVisible(chromedp.CSS("#cf-filter")),
		tb.fill("#cf-filter", "tcp prot 443"),
		chromedp.Click(chromedp.CSS("#capture-save")),
	)
	tb.waitFor("the console's message", `document.querySelector("#cf-filter-error").innerText.includes("syntax error")`)
	tb.do(
		tb.fill("#cf-filter", "tcp port 8443"),
		chromedp.Click(chromedp.CSS("#capture-save")),
	)
	tb.waitFor("the save", `!document.querySelector("#capture-dialog").open`)
	c, err := st.GetCaptures(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Generation != 2 || len(c.Captures) != 1 || c.Captures[0].Filter != "tcp port 8443" {
		t.Errorf("stored config %+v, want generation 2 with the new filter", c)
	}

	tb.do(
		chromedp.Click(chromedp.CSS("#new-key")),
		chromedp.WaitVisible(chromedp.CSS("#kf-note")),
		chromedp.Click(chromedp.CSS("#key-create")),
		chromedp.WaitVisible(chromedp.CSS("#kr-command")),
	)
	cmd := eval[string](tb, `document.querySelector("#kr-command").value`)
	if !strings.HasPrefix(cmd, "ringtap agent enroll --console "+srv.AgentURL()+" --key ") || !strings.HasSuffix(cmd, "--ca-fingerprint "+ca.Fingerprint()) {
		t.Errorf("command %q, want this console's URL %s and CA %s", cmd, srv.AgentURL(), ca.Fingerprint())
	}
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

// mustSeedDevice enrolls a device straight into the store, with a
// config and a heartbeat, as an agent would have.
func mustSeedDevice(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	key, _ := pki.NewInstallKey()
	hash := store.HashSecret(key)
	if err := st.CreateInstallKey(ctx, store.InstallKey{Hash: hash, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	id := store.NewID()
	if !pki.ValidDeviceID(id) {
		t.Fatalf("store.NewID %q is no device id", id)
	}
	e := store.Enrollment{
		Device: store.Device{ID: id, Hostname: "real-sensor-1", MachineID: "0123456789abcdef0123456789abcdef", AgentVersion: "0.9.2",
			Interfaces: []string{"eth0"}, EnrolledAt: now, CertSerial: "1f", CertNotAfter: now.Add(30 * 24 * time.Hour)},
		Certificate: store.Certificate{Serial: "1f", DeviceID: id, PublicKeyFingerprint: "sha256:00", NotBefore: now, NotAfter: now.Add(30 * 24 * time.Hour), DER: []byte{0x30}},
	}
	if _, _, err := st.ConsumeInstallKey(ctx, hash, e, now); err != nil {
		t.Fatal(err)
	}
	caps := []store.Capture{{Name: "web", Interface: "eth0", Filter: "tcp port 443", Output: store.Output{Dir: "/var/lib/ringtap/web"}}}
	if _, err := st.PutCaptures(ctx, id, 0, caps, now); err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(console.Heartbeat{AppliedGeneration: 1, Hostname: "real-sensor-1", AgentVersion: "0.9.2", MachineID: e.Device.MachineID,
		Interfaces: []string{"eth0"}, Captures: []agent.CaptureStatus{{Name: "web", Interface: "eth0", Hook: "xdp", State: "running", Seen: 1000, Captured: 900, RingDrops: 3, WriteDrops: 2}}})
	if err := st.PutStatus(ctx, id, store.Status{Time: now, AppliedGeneration: 1, Hostname: "real-sensor-1", AgentVersion: "0.9.2", Interfaces: []string{"eth0"}, Document: doc}); err != nil {
		t.Fatal(err)
	}
	return id
}
