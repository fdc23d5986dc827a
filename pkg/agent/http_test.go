package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeCaptures is a StatusSource the test changes.
type fakeCaptures struct {
	mu   sync.Mutex
	caps []CaptureStatus
}

func (f *fakeCaptures) Captures() []CaptureStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CaptureStatus(nil), f.caps...)
}

func (f *fakeCaptures) set(caps ...CaptureStatus) {
	f.mu.Lock()
	f.caps = caps
	f.mu.Unlock()
}

// mustServe runs an HTTP server on 127.0.0.1:0 as a component of a running
// tree and returns its base URL and a client.
func mustServe(t *testing.T, opts HTTPOptions, more map[string]Component) (*Tree, string, *http.Client, func() error) {
	t.Helper()
	log, _ := mustLogger(t)
	tree := NewTree(TreeOptions{Logger: log, BackoffBase: 20 * time.Millisecond, BackoffMax: 40 * time.Millisecond, StopTimeout: 5 * time.Second})
	opts.Listen = "127.0.0.1:0"
	opts.Tree = tree
	opts.Logger = log
	srv := NewHTTPServer(opts)
	tree.Add("http", srv)
	for name, c := range more {
		tree.Add(name, c)
	}
	stop := runTree(t, tree)
	mustEventually(t, "the server to listen", func() bool { return srv.Addr() != "" })
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return tree, "http://" + srv.Addr(), client, stop
}

func mustGet(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHTTPMetrics(t *testing.T) {
	caps := &fakeCaptures{}
	caps.set(
		CaptureStatus{Name: "web", Interface: "eth0", Hook: "xdp", State: CaptureRunning,
			Seen: 100, Matched: 50, Captured: 48, RingDrops: 1, CopyFailures: 1, Bytes: 4800, Written: 47, WriteDrops: 1, Files: 3},
		CaptureStatus{Name: `odd "name" \ with` + "\nnewline", Interface: "eth1", State: CaptureWaitingForInterface},
	)
	var flakyRuns atomic.Int64
	flaky := ComponentFunc(func(ctx context.Context) error {
		if flakyRuns.Add(1) == 1 {
			return errors.New("first run fails")
		}
		<-ctx.Done()
		return nil
	})
	extra := func(w io.Writer) { io.WriteString(w, "# TYPE ringtap_test_extra gauge\nringtap_test_extra 7\n") }
	tree, base, client, _ := mustServe(t, HTTPOptions{Status: caps, ExtraMetrics: []func(io.Writer){extra}},
		map[string]Component{"flaky": flaky})
	mustEventually(t, "flaky restarted", func() bool { return componentStatus(tree, "flaky").State == StateRunning && flakyRuns.Load() == 2 })

	code, body := mustGet(t, client, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, body)
	}
	for _, want := range []string{
		`ringtap_agent_component_restarts_total{component="flaky"} 1`,
		`ringtap_agent_component_restarts_total{component="http"} 0`,
		`ringtap_agent_component_up{component="flaky"} 1`,
		`ringtap_capture_up{capture="web",interface="eth0"} 1`,
		`ringtap_capture_packets_seen_total{capture="web",interface="eth0"} 100`,
		`ringtap_capture_packets_matched_total{capture="web",interface="eth0"} 50`,
		`ringtap_capture_packets_captured_total{capture="web",interface="eth0"} 48`,
		`ringtap_capture_ring_drops_total{capture="web",interface="eth0"} 1`,
		`ringtap_capture_copy_failures_total{capture="web",interface="eth0"} 1`,
		`ringtap_capture_bytes_total{capture="web",interface="eth0"} 4800`,
		`ringtap_capture_packets_written_total{capture="web",interface="eth0"} 47`,
		`ringtap_capture_write_drops_total{capture="web",interface="eth0"} 1`,
		`ringtap_capture_files_total{capture="web",interface="eth0"} 3`,
		`ringtap_capture_up{capture="odd \"name\" \\ with\nnewline",interface="eth1"} 0`,
		"# TYPE ringtap_capture_packets_seen_total counter",
		"ringtap_test_extra 7",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The parser unescapes the label back to the capture's name.
	var names []string
	for _, m := range families["ringtap_capture_up"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "capture" {
				names = append(names, l.GetValue())
			}
		}
	}
	if diff := cmp.Diff([]string{"web", `odd "name" \ with` + "\nnewline"}, names); diff != "" {
		t.Errorf("capture label values (-want +got):\n%s", diff)
	}
	for _, d := range allMetrics() {
		if _, ok := families[d.Name]; !ok {
			t.Errorf("/metrics lacks family %s", d.Name)
		}
	}
}

func TestEscapeLabel(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "eth0", "eth0"},
		{"quote", `a"b`, `a\"b`},
		{"backslash", `a\b`, `a\\b`},
		{"newline", "a\nb", `a\nb`},
		{"invalid utf8", "a\xffb", "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeLabel(tt.in); got != tt.want {
				t.Errorf("escapeLabel(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMetricsTable(t *testing.T) {
	table := MetricsTable()
	for _, d := range allMetrics() {
		if !strings.Contains(table, "| `"+d.Name+"` |") {
			t.Errorf("MetricsTable lacks %s", d.Name)
		}
		if d.Type == "counter" && !strings.HasSuffix(d.Name, "_total") {
			t.Errorf("counter %s does not end in _total", d.Name)
		}
		if !strings.HasPrefix(d.Name, "ringtap_") {
			t.Errorf("metric %s lacks the ringtap_ prefix", d.Name)
		}
	}
}

func TestHTTPReadyz(t *testing.T) {
	caps := &fakeCaptures{}
	var fail atomic.Bool
	failing := ComponentFunc(func(ctx context.Context) error {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if fail.Load() {
				return errors.New("netlink closed")
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	_, base, client, _ := mustServe(t, HTTPOptions{Status: caps}, map[string]Component{"linkwatch": failing})

	tests := []struct {
		name     string
		caps     []CaptureStatus
		fail     bool
		wantCode int
		wantBody []string
	}{
		{"starting", []CaptureStatus{{Name: "web", Interface: "eth0", State: CaptureStarting}}, false,
			http.StatusServiceUnavailable, []string{"capture web on eth0: starting"}},
		{"failed and starting", []CaptureStatus{
			{Name: "web", Interface: "eth0", State: CaptureFailed, LastError: "attach xdp\nto eth0: busy"},
			{Name: "dns", Interface: "eth1", State: CaptureStarting},
		}, false, http.StatusServiceUnavailable, []string{"capture web on eth0: failed: attach xdp to eth0: busy\ncapture dns on eth1: starting\n"}},
		{"running and waiting", []CaptureStatus{
			{Name: "web", Interface: "eth0", State: CaptureRunning},
			{Name: "dns", Interface: "eth9", State: CaptureWaitingForInterface},
		}, false, http.StatusOK, []string{"ok\n"}},
		{"component in backoff", []CaptureStatus{{Name: "web", Interface: "eth0", State: CaptureRunning}}, true,
			http.StatusServiceUnavailable, []string{"component linkwatch in restart backoff", "netlink closed"}},
		{"no captures", nil, false, http.StatusOK, []string{"ok\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps.set(tt.caps...)
			fail.Store(tt.fail)
			var code int
			var body string
			// The component's state follows fail after a restart or a
			// backoff: poll until the code is the one wanted.
			mustEventually(t, "readyz "+http.StatusText(tt.wantCode), func() bool {
				code, body = mustGet(t, client, base+"/readyz")
				return code == tt.wantCode
			})
			for _, s := range tt.wantBody {
				if !strings.Contains(body, s) {
					t.Errorf("/readyz body %q lacks %q", body, s)
				}
			}
			if code != http.StatusOK && strings.Count(body, "\n") != strings.Count(body, "capture ")+strings.Count(body, "component ") {
				t.Errorf("/readyz body %q: want one line per problem", body)
			}
		})
	}
	if code, body := mustGet(t, client, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

func TestHTTPStatus(t *testing.T) {
	caps := &fakeCaptures{}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	caps.set(CaptureStatus{Name: "web", Interface: "eth0", Hook: "tcx", State: CaptureRunning, Seen: 9, CurrentFile: "/var/lib/ringtap/web/x.pcapng", Since: since})
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, base, client, _ := mustServe(t, HTTPOptions{Status: caps, Version: "v1.2.3", StartedAt: started}, nil)
	code, body := mustGet(t, client, base+"/status.json")
	if code != http.StatusOK {
		t.Fatalf("/status.json: %d %s", code, body)
	}
	var got Status
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode /status.json: %v\n%s", err, body)
	}
	want := Status{
		Captures:   caps.Captures(),
		Components: []ComponentStatus{{Name: "http", State: StateRunning}},
		Version:    "v1.2.3",
		StartedAt:  started,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/status.json (-want +got):\n%s", diff)
	}
	for _, key := range []string{`"captures"`, `"components"`, `"version"`, `"started_at"`, `"ring_drops"`, `"current_file"`} {
		if !strings.Contains(body, key) {
			t.Errorf("/status.json lacks %s", key)
		}
	}
}

func TestHTTPPprof(t *testing.T) {
	tests := []struct {
		pprof bool
		want  int
	}{
		{false, http.StatusNotFound},
		{true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(map[bool]string{false: "disabled", true: "enabled"}[tt.pprof], func(t *testing.T) {
			_, base, client, _ := mustServe(t, HTTPOptions{Pprof: tt.pprof}, nil)
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
				if code, _ := mustGet(t, client, base+path); code != tt.want {
					t.Errorf("%s: %d, want %d", path, code, tt.want)
				}
			}
		})
	}
}

// TestHTTPGracefulShutdown: stopping the tree waits for a request in
// flight, which completes.
func TestHTTPGracefulShutdown(t *testing.T) {
	log, _ := mustLogger(t)
	entered := make(chan struct{})
	slowDone := make(chan struct{})
	srv := NewHTTPServer(HTTPOptions{Listen: "127.0.0.1:0", Logger: log, ShutdownTimeout: 5 * time.Second,
		ExtraMetrics: []func(io.Writer){func(w io.Writer) {
			close(entered)
			time.Sleep(300 * time.Millisecond)
			io.WriteString(w, "slow_metric 1\n")
			close(slowDone)
		}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(ctx) }()
	mustEventually(t, "the server to listen", func() bool { return srv.Addr() != "" })
	addr := srv.Addr()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	cancel()
	err := <-runDone
	select {
	case <-slowDone:
	default:
		t.Error("Run returned before the in-flight request finished")
	}
	if err != nil {
		t.Errorf("Run: %v", err)
	}
	r := <-got
	if r.err != nil || r.code != http.StatusOK || !strings.Contains(r.body, "slow_metric 1") {
		t.Errorf("in-flight request: %d %v, body has slow_metric: %v", r.code, r.err, strings.Contains(r.body, "slow_metric 1"))
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("server still accepts connections after Run returned")
	}
}

func TestHTTPAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	log, _ := mustLogger(t)
	srv := NewHTTPServer(HTTPOptions{Listen: ln.Addr().String(), Logger: log})
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Run on a taken address: %v, want an error naming %s and saying it is in use", err, ln.Addr())
	}
}
