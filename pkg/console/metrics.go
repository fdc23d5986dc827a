package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// The console's metrics, served on Config.MetricsListen: the requests of
// both listeners (counted as they end), the long polls, and the fleet as
// the store has it (read at scrape time, in the device list's four
// queries). MetricsTable lists them; README's console metrics table is
// its output.
var (
	metricRequests = metricFamily{"ringtap_console_requests_total", "counter", "listener, route, code",
		"Requests answered, by listener (agent, admin), route (the endpoint's pattern, such as `POST /api/v1/agent/heartbeat`; `unmatched` for none) and status code (500 for a handler that failed before answering)."}
	metricRequestSeconds = metricFamily{"ringtap_console_request_duration_seconds", "histogram", "listener, route",
		"Time from a request's headers to the end of its answer. Long polls (`GET /api/v1/agent/config`) last up to their wait."}
	metricInFlight = metricFamily{"ringtap_console_requests_in_flight", "gauge", "listener",
		"Requests being answered now, long polls included."}
	metricLongPolls = metricFamily{"ringtap_console_long_polls", "gauge", "",
		"Agents waiting in a long poll for a config change on this console: the agents connected to it."}
	metricStoreUp = metricFamily{"ringtap_console_store_up", "gauge", "",
		"1 when the store answered this scrape's queries; 0 when it failed, and the fleet families below are left out."}
	metricDevices = metricFamily{"ringtap_console_devices", "gauge", "state",
		"Devices by state: online (a heartbeat within the last 30 s), stale, revoked."}
	metricDevicesBehind = metricFamily{"ringtap_console_devices_config_behind", "gauge", "",
		"Devices not revoked whose last heartbeat reports an older generation than their desired config: a change on its way, or one the agent could not apply."}
	metricDevicesErrors = metricFamily{"ringtap_console_devices_with_errors", "gauge", "",
		"Devices not revoked whose last heartbeat reported errors."}
	metricDevicesReenroll = metricFamily{"ringtap_console_devices_needing_reenrollment", "gauge", "",
		"Devices not revoked whose last heartbeat says their certificate expired or was refused: enroll them again."}
	metricDevicesDuplicate = metricFamily{"ringtap_console_devices_duplicate_machine_id", "gauge", "",
		"Devices not revoked that share their machine id with another (cloned machines)."}
	metricCaptures = metricFamily{"ringtap_console_captures", "gauge", "state",
		"Captures in the last heartbeats of the devices not revoked, by state: running, starting, waiting_for_interface, stopping, failed, other."}
)

// metricFamilies lists the families in the order of MetricsTable.
var metricFamilies = []metricFamily{
	metricRequests, metricRequestSeconds, metricInFlight, metricLongPolls, metricStoreUp,
	metricDevices, metricDevicesBehind, metricDevicesErrors, metricDevicesReenroll,
	metricDevicesDuplicate, metricCaptures,
}

// captureStates are the states ringtap_console_captures always has a
// sample for (0 when none), so that an alert on failed captures has a
// series to compare.
var captureStates = []string{agent.CaptureRunning, agent.CaptureStarting, agent.CaptureWaitingForInterface,
	agent.CaptureStopping, agent.CaptureFailed}

// otherState counts the captures a heartbeat gave any other state (a
// newer agent's, say).
const otherState = "other"

// requestBuckets are the request duration histogram's upper bounds, up to
// the longest long poll.
var requestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metricsScrapeTimeout bounds the store queries of one scrape.
const metricsScrapeTimeout = 10 * time.Second

// metricFamily is one family the console writes.
type metricFamily struct {
	Name, Type, Labels, Help string
}

// header writes the family's HELP and TYPE lines.
func (f metricFamily) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.Name, strings.ReplaceAll(f.Help, "\n", " "), f.Name, f.Type)
}

// MetricsTable returns the console's metrics as a Markdown table, for the
// README. /metrics also serves the process and Go runtime metrics
// (process_*, go_*), which it does not list.
func MetricsTable() string {
	var b strings.Builder
	b.WriteString("| console metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, f := range metricFamilies {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Name, f.Type, f.Labels, f.Help)
	}
	return b.String()
}

// serverMetrics holds the request counters and histograms (a Set of the
// Server's own: tests run several Servers in one process) and the gauges
// counted in place.
type serverMetrics struct {
	// requests and durations are two Sets so that each family is written
	// whole after its own HELP and TYPE lines.
	requests, durations *metrics.Set
	inFlight            [2]atomic.Int64 // by listener index
	longPolls           atomic.Int64
}

const (
	listenerAgent = iota
	listenerAdmin
)

var listenerNames = [2]string{"agent", "admin"}

func newServerMetrics() *serverMetrics {
	return &serverMetrics{requests: metrics.NewSet(), durations: metrics.NewSet()}
}

// instrument counts every request h answers on the listener: its route
// (the pattern the ServeMux chose, which it sets on the request itself, so
// it is known once h returns), status code and duration.
func (m *serverMetrics) instrument(listener int, h http.Handler) http.Handler {
	name := listenerNames[listener]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight[listener].Add(1)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			m.inFlight[listener].Add(-1)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			code := sw.code
			// A handler that panicked before answering leaves the client a
			// closed connection: count it as the server error it is, then let
			// net/http log it and close the connection as it would.
			p := recover()
			switch {
			case code == 0 && p != nil:
				code = http.StatusInternalServerError
			case code == 0:
				code = http.StatusOK
			}
			defer func() {
				if p != nil {
					panic(p)
				}
			}()
			labels := fmt.Sprintf(`listener=%q,route=%q`, name, route)
			m.requests.GetOrCreateCounter(`ringtap_console_requests_total{` + labels + `,code="` + strconv.Itoa(code) + `"}`).Inc()
			m.durations.GetOrCreatePrometheusHistogramExt(`ringtap_console_request_duration_seconds{`+labels+`}`, requestBuckets).UpdateDuration(start)
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter notes the status code of the answer. Unwrap lets
// http.ResponseController reach the connection's deadlines; Flush serves
// those who assert http.Flusher.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush makes statusWriter an http.Flusher, as the writer it wraps is:
// the live stream flushes by asserting it (livestream.Subscriber.WriteTo).
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// metricsHandler serves /metrics.
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), metricsScrapeTimeout)
		defer cancel()
		views, err := s.deviceViews(ctx)
		if err != nil {
			s.log.Warn("metrics: read the fleet", "err", err)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		s.writeMetrics(w, views, err == nil)
	})
	if s.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found: the console's metrics are at GET /metrics", http.StatusNotFound)
	})
	return mux
}

// writeMetrics writes the whole /metrics body: process and Go runtime
// metrics, the requests, and the fleet from views (left out when the
// store failed: fleetOK false).
func (s *Server) writeMetrics(w io.Writer, views []deviceView, fleetOK bool) {
	m := s.metrics
	metrics.WriteProcessMetrics(w)

	metricRequests.header(w)
	m.requests.WritePrometheus(w)
	metricRequestSeconds.header(w)
	m.durations.WritePrometheus(w)
	metricInFlight.header(w)
	for i, name := range listenerNames {
		fmt.Fprintf(w, "%s{listener=%q} %d\n", metricInFlight.Name, name, m.inFlight[i].Load())
	}
	metricLongPolls.header(w)
	fmt.Fprintf(w, "%s %d\n", metricLongPolls.Name, m.longPolls.Load())
	metricStoreUp.header(w)
	fmt.Fprintf(w, "%s %d\n", metricStoreUp.Name, btoi(fleetOK))
	if !fleetOK {
		return
	}

	f := summarize(views)
	metricDevices.header(w)
	for _, st := range []store.State{store.StateOnline, store.StateStale, store.StateRevoked} {
		fmt.Fprintf(w, "%s{state=%q} %d\n", metricDevices.Name, st, f.devices[st])
	}
	for _, g := range []struct {
		fam metricFamily
		n   int
	}{
		{metricDevicesBehind, f.behind}, {metricDevicesErrors, f.withErrors},
		{metricDevicesReenroll, f.reenroll}, {metricDevicesDuplicate, f.duplicate},
	} {
		g.fam.header(w)
		fmt.Fprintf(w, "%s %d\n", g.fam.Name, g.n)
	}
	metricCaptures.header(w)
	for _, st := range append(captureStates, otherState) {
		fmt.Fprintf(w, "%s{state=%q} %d\n", metricCaptures.Name, st, f.captures[st])
	}
}

// fleet sums up the device views for the metrics.
type fleet struct {
	devices                                 map[store.State]int
	behind, withErrors, reenroll, duplicate int
	captures                                map[string]int
}

func summarize(views []deviceView) fleet {
	f := fleet{devices: map[store.State]int{}, captures: map[string]int{}}
	for _, v := range views {
		f.devices[v.State]++
		if v.State == store.StateRevoked {
			continue
		}
		if v.AppliedGeneration < v.Generation {
			f.behind++
		}
		if v.Errors > 0 {
			f.withErrors++
		}
		if v.NeedsReenroll {
			f.reenroll++
		}
		if v.DuplicateMachineID {
			f.duplicate++
		}
		for _, c := range v.CaptureStates {
			st := c.State
			if !slices.Contains(captureStates, st) {
				st = otherState // an agent's words: never a label value of its own
			}
			f.captures[st]++
		}
	}
	return f
}
