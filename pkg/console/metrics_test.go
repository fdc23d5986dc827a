package console

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// TestMetrics: the metrics listener serves valid Prometheus text with
// every family of MetricsTable and no other ringtap_console_ family; the
// fleet gauges sum up the store as the device list does (revoked devices
// apart, an agent's odd capture state as "other"); requests are counted
// by the route the mux chose and the code answered; a long poll shows
// while it waits; and a store that fails is store_up 0 without fleet
// figures rather than an error page.
func TestMetrics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st := b.open(t)
		c := mustConsoleWith(t, st, nil, func(cfg *Config) { cfg.MetricsListen = "127.0.0.1:0" })
		if c.srv.MetricsAddr() == "" {
			t.Fatal("no metrics listener")
		}
		body, fams := mustScrape(t, c)
		mustHaveSamples(t, body,
			`ringtap_console_store_up 1`,
			`ringtap_console_devices{state="online"} 0`,
			`ringtap_console_devices{state="revoked"} 0`,
			`ringtap_console_captures{state="failed"} 0`,
			`ringtap_console_long_polls 0`,
		)
		mustMatchTable(t, fams)

		// Three devices: two share a machine id, the third is revoked.
		a1 := c.mustEnroll("sensor-1", "m-1")
		a2 := c.mustEnroll("sensor-2", "m-1")
		a3 := c.mustEnroll("sensor-3", "m-3")
		put := map[string]any{"captures": []store.Capture{webCapture("web")}}
		c.mustDo(http.StatusOK, "PUT", "/api/v1/devices/"+a1.m.DeviceID()+"/captures", put, nil, "If-Match", "0")
		hb1 := Heartbeat{AppliedGeneration: 0, Hostname: "sensor-1", MachineID: "m-1", Interfaces: []string{"eth0"},
			Captures: []agent.CaptureStatus{
				{Name: "web", Interface: "eth0", State: agent.CaptureRunning},
				{Name: "dns", Interface: "eth1", State: agent.CaptureFailed},
				{Name: "new", Interface: "eth2", State: "state of a newer agent\n\"quoted\""},
			},
			Errors: []string{"capture dns on eth1: failed"}, Certificate: &HeartbeatCertificate{NeedsReenroll: true}}
		hb2 := Heartbeat{Hostname: "sensor-2", MachineID: "m-1", Interfaces: []string{"eth0"},
			Captures: []agent.CaptureStatus{{Name: "web", Interface: "eth0", State: agent.CaptureRunning}}}
		hb3 := hb2
		hb3.Hostname, hb3.MachineID = "sensor-3", "m-3"
		for _, x := range []struct {
			a  *agentClient
			hb Heartbeat
		}{{a1, hb1}, {a2, hb2}, {a3, hb3}} {
			if code, body := x.a.do("POST", HeartbeatPath, mustJSON(t, x.hb)); code != http.StatusNoContent {
				t.Fatalf("heartbeat: %d %s", code, body)
			}
		}
		c.mustDo(http.StatusOK, "POST", "/api/v1/devices/"+a3.m.DeviceID()+"/revoke", nil, nil)
		if code, _ := c.doToken("", "GET", "/api/v1/devices", nil); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", code)
		}
		if code, _ := a1.do("GET", "/api/v1/agent/nowhere", nil); code != http.StatusNotFound {
			t.Fatalf("unknown agent path: %d", code)
		}

		body, fams = mustScrape(t, c)
		mustHaveSamples(t, body,
			`ringtap_console_devices{state="online"} 2`,
			`ringtap_console_devices{state="stale"} 0`,
			`ringtap_console_devices{state="revoked"} 1`,
			`ringtap_console_devices_config_behind 1`, // sensor-1 runs 0 of 1
			`ringtap_console_devices_with_errors 1`,
			`ringtap_console_devices_needing_reenrollment 1`,
			`ringtap_console_devices_duplicate_machine_id 2`,
			`ringtap_console_captures{state="running"} 2`, // sensor-3's is revoked
			`ringtap_console_captures{state="failed"} 1`,
			`ringtap_console_captures{state="other"} 1`,
			`ringtap_console_captures{state="starting"} 0`,
			`ringtap_console_requests_total{listener="agent",route="POST /api/v1/agent/heartbeat",code="204"} 3`,
			`ringtap_console_requests_total{listener="agent",route="POST /api/v1/agent/enroll",code="200"} 3`,
			`ringtap_console_requests_total{listener="agent",route="/",code="404"} 1`,
			`ringtap_console_requests_total{listener="admin",route="POST /api/v1/install-keys",code="201"} 3`,
			`ringtap_console_requests_total{listener="admin",route="PUT /api/v1/devices/{id}/captures",code="200"} 1`,
			`ringtap_console_requests_total{listener="admin",route="POST /api/v1/devices/{id}/revoke",code="200"} 1`,
			`ringtap_console_requests_total{listener="admin",route="/api/",code="401"} 1`,
			`ringtap_console_request_duration_seconds_count{listener="agent",route="POST /api/v1/agent/heartbeat"} 3`,
			`ringtap_console_requests_in_flight{listener="admin"} 0`,
		)
		mustMatchTable(t, fams)

		// A long poll shows while it waits, and ends with the change.
		polled := make(chan int, 1)
		go func() {
			code, _, err := agentDo(a2.client, a2.url, "GET", ConfigPath+"?after=0&wait=30s", nil)
			if err != nil {
				t.Errorf("long poll: %v", err)
			}
			polled <- code
		}()
		mustEventually(t, "the long poll counted", func() (bool, string) {
			body, _ := mustScrape(t, c)
			return strings.Contains(body, "\nringtap_console_long_polls 1\n") &&
				strings.Contains(body, "\n"+`ringtap_console_requests_in_flight{listener="agent"} 1`+"\n"), body
		})
		c.mustDo(http.StatusOK, "PUT", "/api/v1/devices/"+a2.m.DeviceID()+"/captures", put, nil, "If-Match", "0")
		if code := <-polled; code != http.StatusOK {
			t.Fatalf("long poll: %d, want 200 with the change", code)
		}
		body, _ = mustScrape(t, c)
		mustHaveSamples(t, body,
			`ringtap_console_long_polls 0`,
			`ringtap_console_requests_total{listener="agent",route="GET /api/v1/agent/config",code="200"} 1`,
			`ringtap_console_devices_config_behind 2`,
		)

		// The store fails: the page says so and leaves the fleet out.
		st.Close()
		body, fams = mustScrape(t, c)
		mustHaveSamples(t, body, `ringtap_console_store_up 0`)
		if _, ok := fams[metricDevices.Name]; ok {
			t.Errorf("%s written although the store failed", metricDevices.Name)
		}
	})
}

// TestREADMEConsoleMetrics: README.md's console metrics table is
// MetricsTable's output, row for row.
func TestREADMEConsoleMetrics(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := MetricsTable(); !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks the console's metrics table; put this under \"Metrics\" in \"The console\":\n%s", want)
	}
}

// TestMetricsListenerBusy: a metrics address in use fails New, naming
// it.
func TestMetricsListenerBusy(t *testing.T) {
	c := mustConsoleWith(t, backends[0].open(t), nil, func(cfg *Config) { cfg.MetricsListen = "127.0.0.1:0" })
	_, err := New(Config{Store: c.st, CA: c.ca, DataDir: t.TempDir(), AgentListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		MetricsListen: c.srv.MetricsAddr()})
	if err == nil || !strings.Contains(err.Error(), "console: metrics: ") || !strings.Contains(err.Error(), c.srv.MetricsAddr()) {
		t.Fatalf("New with a busy metrics address: %v", err)
	}
}

// TestPprof: /debug/pprof/ is on the metrics listener only with Pprof,
// and Pprof needs the metrics listener.
func TestPprof(t *testing.T) {
	get := func(c *testConsole, path string) int {
		t.Helper()
		resp, err := http.Get("http://" + c.srv.MetricsAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	on := mustConsoleWith(t, backends[0].open(t), nil, func(cfg *Config) { cfg.MetricsListen, cfg.Pprof = "127.0.0.1:0", true })
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		if code := get(on, path); code != http.StatusOK {
			t.Errorf("with Pprof, GET %s: %d", path, code)
		}
	}
	off := mustConsoleWith(t, backends[0].open(t), nil, func(cfg *Config) { cfg.MetricsListen = "127.0.0.1:0" })
	if code := get(off, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("without Pprof, GET /debug/pprof/: %d, want 404", code)
	}
	if _, err := New(Config{Store: off.st, CA: off.ca, DataDir: t.TempDir(), Pprof: true}); err == nil || !strings.Contains(err.Error(), "--metrics-listen") {
		t.Errorf("New with Pprof and no metrics listener: %v", err)
	}
}

// mustScrape gets the console's /metrics and parses it strictly.
func mustScrape(t *testing.T, c *testConsole) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	client := &http.Client{Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + c.srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v\n%s", resp.StatusCode, err, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, b)
	}
	return string(b), fams
}

// mustHaveSamples checks that each sample line is in body, whole.
func mustHaveSamples(t *testing.T, body string, samples ...string) {
	t.Helper()
	for _, s := range samples {
		if !strings.Contains("\n"+body, "\n"+s+"\n") {
			t.Errorf("/metrics lacks the sample %s", s)
		}
	}
	if t.Failed() {
		var ours []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "ringtap_console_") && !strings.Contains(l, "_bucket{") {
				ours = append(ours, l)
			}
		}
		t.Logf("the console's samples:\n%s", strings.Join(ours, "\n"))
	}
}

// mustMatchTable checks that the scraped ringtap_console_ families are
// MetricsTable's, with its types.
func mustMatchTable(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	want := map[string]string{}
	for _, f := range metricFamilies {
		want[f.Name] = f.Type
	}
	var got []string
	for name, f := range fams {
		if !strings.HasPrefix(name, "ringtap_console_") {
			continue
		}
		got = append(got, name)
		typ, ok := want[name]
		switch {
		case !ok:
			t.Errorf("/metrics has %s, which MetricsTable does not list", name)
		case strings.ToLower(f.GetType().String()) != typ:
			t.Errorf("%s is a %s on /metrics, a %s in MetricsTable", name, strings.ToLower(f.GetType().String()), typ)
		}
	}
	sort.Strings(got)
	for name := range want {
		if _, ok := fams[name]; !ok && name != metricRequests.Name && name != metricRequestSeconds.Name {
			t.Errorf("/metrics lacks %s (families: %v)", name, got)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// mustEventually polls cond for up to 10 s.
func mustEventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last:\n%s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A handler that panics before answering is counted as a 500 (the client
// sees its connection closed), and the panic still reaches net/http,
// which closes the connection; one that panics after answering keeps the
// code it sent.
func TestInstrumentPanic(t *testing.T) {
	m := newServerMetrics()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /late", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic(http.ErrAbortHandler)
	})
	srv := httptest.NewUnstartedServer(m.instrument(listenerAdmin, mux))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	for _, path := range []string{"/boom", "/late"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if path == "/boom" && err == nil {
			t.Errorf("GET %s answered %d; want the connection closed", path, resp.StatusCode)
		}
	}
	var b strings.Builder
	m.requests.WritePrometheus(&b)
	for _, want := range []string{
		`ringtap_console_requests_total{listener="admin",route="GET /boom",code="500"} 1`,
		`ringtap_console_requests_total{listener="admin",route="GET /late",code="202"} 1`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("counters lack %s:\n%s", want, b.String())
		}
	}
	if n := m.inFlight[listenerAdmin].Load(); n != 0 {
		t.Errorf("%d requests in flight after both ended", n)
	}
}
