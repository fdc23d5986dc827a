package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HTTPOptions configure an HTTPServer. Zero durations take the defaults in
// their comments.
type HTTPOptions struct {
	// Listen is the TCP address, host:port (":9090" listens on every
	// address; "127.0.0.1:0" picks a free port, see Addr).
	Listen string
	// Pprof serves /debug/pprof/ when true (404 otherwise).
	Pprof  bool
	Tree   *Tree        // components for /metrics, /readyz, /status.json; may be nil
	Status StatusSource // captures; may be nil
	Logger *slog.Logger // slog.Default()
	// ExtraMetrics are called in order at each scrape, after the agent's
	// own metrics, to write more Prometheus text (other packages' metric
	// families, each written once).
	ExtraMetrics []func(w io.Writer)
	// ExtraReady are more readiness checks for /readyz, called at each
	// request: one answering false makes the agent not ready, its reason
	// (one line per problem) in the body (e.g. the certificate manager's
	// Ready).
	ExtraReady []func() (ok bool, reason string)
	// ExtraStatus adds top-level keys to /status.json, each value computed
	// at each request and encoded as JSON (e.g. "certificate": the
	// certificate manager's Status). A key of the agent's own (captures,
	// components, version, started_at) is not replaced.
	ExtraStatus map[string]func() any
	// Version is reported in /status.json.
	Version string
	// StartedAt is reported in /status.json: the time NewHTTPServer was
	// called unless set.
	StartedAt time.Time
	// ShutdownTimeout bounds the graceful shutdown: in-flight requests
	// get this long to finish once the context is done, then connections
	// are closed. 5s.
	ShutdownTimeout time.Duration
}

// HTTPServer serves the agent's metrics, health, readiness and status. It is
// a Component: Run listens, serves until ctx is done, then shuts down
// gracefully.
type HTTPServer struct {
	opts    HTTPOptions
	log     *slog.Logger
	handler http.Handler

	mu   sync.Mutex
	addr string
}

// The server's timeouts. WriteTimeout leaves room for a 30s CPU profile
// (pprof's default), which the pprof handler refuses when it would not fit.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 60 * time.Second
	httpIdleTimeout       = 2 * time.Minute
)

// NewHTTPServer returns a server; nothing listens until Run.
func NewHTTPServer(opts HTTPOptions) *HTTPServer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StartedAt.IsZero() {
		opts.StartedAt = time.Now()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	s := &HTTPServer{opts: opts, log: opts.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /status.json", s.serveStatus)
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.handler = mux
	return s
}

// Handler returns the server's routes, for tests and for mounting
// elsewhere.
func (s *HTTPServer) Handler() http.Handler { return s.handler }

// Addr returns the address Run listens on ("" when not listening), with
// the port resolved when Listen asked for port 0.
func (s *HTTPServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run listens on Listen and serves until ctx is done, then stops accepting,
// waits up to ShutdownTimeout for in-flight requests, and closes what is
// left. An address in use is an error saying so.
func (s *HTTPServer) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("http listen on %s: address already in use: stop the process that holds it or choose another listen address: %w", s.opts.Listen, err)
		}
		return fmt.Errorf("http listen on %s: %w", s.opts.Listen, err)
	}
	addr := ln.Addr().String()
	s.mu.Lock()
	s.addr = addr
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.addr = ""
		s.mu.Unlock()
	}()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("http server listening", "addr", addr, "pprof", s.opts.Pprof)

	select {
	case err := <-served:
		return fmt.Errorf("http serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		s.log.Warn("http server: requests still in flight after the shutdown timeout, closing", "addr", addr, "timeout", s.opts.ShutdownTimeout)
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed, at once after Shutdown
	if err != nil {
		return fmt.Errorf("http shutdown on %s: %w", addr, err)
	}
	return nil
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func (s *HTTPServer) components() []ComponentStatus {
	if s.opts.Tree == nil {
		return nil
	}
	return s.opts.Tree.Components()
}

func (s *HTTPServer) captures() []CaptureStatus {
	if s.opts.Status == nil {
		return nil
	}
	return s.opts.Status.Captures()
}

func (s *HTTPServer) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	writeMetrics(&buf, s.components(), s.captures(), s.opts.ExtraMetrics)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// readiness returns the problems that make the agent not ready, one line
// each: every configured capture must be running or waiting for its
// interface, and no component may be in restart backoff.
func (s *HTTPServer) readiness() []string {
	var problems []string
	for _, c := range s.captures() {
		if captureReady(c) {
			continue
		}
		p := fmt.Sprintf("capture %s on %s: %s", c.Name, c.Interface, c.State)
		if c.LastError != "" {
			p += ": " + c.LastError
		}
		problems = append(problems, p)
	}
	if s.opts.Tree != nil {
		if ok, reason := s.opts.Tree.Ready(); !ok {
			problems = append(problems, strings.Split(reason, "\n")...)
		}
	}
	for _, ready := range s.opts.ExtraReady {
		if ok, reason := ready(); !ok {
			if reason == "" {
				reason = "not ready"
			}
			problems = append(problems, strings.Split(reason, "\n")...)
		}
	}
	for i, p := range problems { // one line per problem, whatever the errors hold
		problems[i] = strings.ReplaceAll(p, "\n", " ")
	}
	return problems
}

func (s *HTTPServer) serveReady(w http.ResponseWriter, _ *http.Request) {
	if problems := s.readiness(); len(problems) > 0 {
		writeText(w, http.StatusServiceUnavailable, strings.Join(problems, "\n")+"\n")
		return
	}
	writeText(w, http.StatusOK, "ok\n")
}

// Status is the body of /status.json.
type Status struct {
	Captures   []CaptureStatus   `json:"captures"`
	Components []ComponentStatus `json:"components"`
	Version    string            `json:"version"`
	StartedAt  time.Time         `json:"started_at"`
}

func (s *HTTPServer) serveStatus(w http.ResponseWriter, _ *http.Request) {
	st := Status{Captures: s.captures(), Components: s.components(), Version: s.opts.Version, StartedAt: s.opts.StartedAt}
	if st.Captures == nil {
		st.Captures = []CaptureStatus{}
	}
	if st.Components == nil {
		st.Components = []ComponentStatus{}
	}
	body, err := statusJSON(st, s.opts.ExtraStatus)
	if err != nil {
		writeText(w, http.StatusInternalServerError, fmt.Sprintf("encode status: %v\n", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(body, '\n'))
}

// statusJSON encodes st with the extra keys added at its top level.
func statusJSON(st Status, extra map[string]func() any) ([]byte, error) {
	if len(extra) == 0 {
		return json.MarshalIndent(st, "", "  ")
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	for k, f := range extra {
		if _, own := top[k]; own || f == nil {
			continue
		}
		v, err := json.Marshal(f())
		if err != nil {
			return nil, fmt.Errorf("status %s: %w", k, err)
		}
		top[k] = v
	}
	return json.MarshalIndent(top, "", "  ")
}
