package console

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// Default listen addresses of the two listeners.
const (
	DefaultAgentListen = "127.0.0.1:8443"
	DefaultAdminListen = "127.0.0.1:8444"
)

// DefaultHosts are the server certificates' SANs when none are given.
var DefaultHosts = []string{"127.0.0.1", "localhost"}

// Names of the server certificates' files in the data directory
// (NAME.pem, NAME.key).
const (
	AgentCertName = "agent-api"
	AdminCertName = "admin"
)

// shutdownGrace is how long Run lets requests finish after its context
// ended, before it closes their connections.
const shutdownGrace = 5 * time.Second

// Config is what a Server needs. Store and CA are required.
type Config struct {
	Store store.Store
	CA    *pki.CA
	// DataDir holds the server certificates (AgentCertName,
	// AdminCertName), issued when missing or stale.
	DataDir string
	// Hosts are the server certificates' SANs (DefaultHosts when empty):
	// the names and addresses agents and admins reach the console by.
	Hosts []string
	// AgentListen and AdminListen are the listen addresses
	// (DefaultAgentListen, DefaultAdminListen when empty).
	AgentListen, AdminListen string
	// MetricsListen, when set, is the address of a third listener, plain
	// HTTP, that serves the console's metrics at /metrics (no secrets:
	// counts of requests, devices and captures). Empty: none.
	MetricsListen string
	// Pprof serves net/http/pprof's /debug/pprof/ on the metrics listener
	// too (profiles up to 100 s). Off by default: a profile costs CPU and
	// shows the program's internals.
	Pprof bool
	// AgentURL is the agent API as agents reach it, for the enrollment
	// command of a new install key; by default https://Hosts[0]:PORT, with
	// the agent listener's port.
	AgentURL string
	// ClientValidity is the validity of device certificates
	// (pki.DefaultClientValidity when 0).
	ClientValidity time.Duration
	// Web serves the admin listener's paths outside /api/: the web page,
	// web.Handler() in the binary (package web imports this one in its
	// tests, so the page is plugged in here rather than imported). Nil
	// serves a page that says the web UI is not built in.
	Web http.Handler
	// JobPolicy bounds capture jobs (its defaults for zero fields).
	JobPolicy JobPolicy
	// Logger is slog.Default() when nil; Now is time.Now when nil.
	Logger *slog.Logger
	Now    func() time.Time
}

// Server is a console: the agent API and the admin API on their
// listeners. New listens; Run serves.
type Server struct {
	cfg      Config
	log      *slog.Logger
	agentURL string

	agentLn, adminLn net.Listener
	agentSrv         *http.Server
	adminSrv         *http.Server
	// metricsLn and metricsSrv serve /metrics when Config.MetricsListen
	// is set (else nil).
	metricsLn  net.Listener
	metricsSrv *http.Server
	metrics    *serverMetrics

	// live fans the runs' live streams out to admin clients; uploads
	// serialize the result uploads of each run.
	live    *liveRuns
	uploads uploadLocks
	// spaceWarned is when (Unix ns) the sweep last warned that the space
	// bounds of job results cannot be met.
	spaceWarned atomic.Int64

	// polls ends the long polls and the job loop when Run stops.
	polls      context.Context
	stopPolls  context.CancelFunc
	runOnce    sync.Once
	closeOnce  sync.Once
	closeError error
}

// New issues (or loads) the server certificates and opens both
// listeners, so that their addresses are known before Run.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.CA == nil {
		return nil, errors.New("console: a store and a CA are required")
	}
	if cfg.Pprof && cfg.MetricsListen == "" {
		return nil, errors.New("console: pprof is served on the metrics listener: give it an address (--metrics-listen)")
	}
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = DefaultHosts
	}
	if cfg.AgentListen == "" {
		cfg.AgentListen = DefaultAgentListen
	}
	if cfg.AdminListen == "" {
		cfg.AdminListen = DefaultAdminListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Web == nil {
		cfg.Web = placeholderPage()
	}
	cfg.JobPolicy = cfg.JobPolicy.withDefaults()
	agentCert, err := cfg.CA.ServerCert(pki.ServerCertConfig{Dir: cfg.DataDir, Name: AgentCertName, Hosts: cfg.Hosts})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	adminCert, err := cfg.CA.ServerCert(pki.ServerCertConfig{Dir: cfg.DataDir, Name: AdminCertName, Hosts: cfg.Hosts})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, live: newLiveRuns(), metrics: newServerMetrics()}
	s.polls, s.stopPolls = context.WithCancel(context.Background())
	if s.agentLn, err = net.Listen("tcp", cfg.AgentListen); err != nil {
		return nil, fmt.Errorf("console: agent API: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		s.agentLn.Close()
		return nil, fmt.Errorf("console: admin API: %w", err)
	}
	if cfg.MetricsListen != "" {
		if s.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			s.agentLn.Close()
			s.adminLn.Close()
			return nil, fmt.Errorf("console: metrics: %w", err)
		}
		write := metricsScrapeTimeout + 10*time.Second
		if cfg.Pprof {
			write = 2 * time.Minute // pprof refuses a profile longer than this
		}
		s.metricsSrv = &http.Server{
			Handler:           s.metricsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      write,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		}
	}
	s.agentURL = cfg.AgentURL
	if s.agentURL == "" {
		_, port, _ := net.SplitHostPort(s.agentLn.Addr().String())
		s.agentURL = (&url.URL{Scheme: "https", Host: net.JoinHostPort(cfg.Hosts[0], port)}).String()
	}
	errLog := slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug) // failed handshakes are routine
	s.agentSrv = &http.Server{
		Handler:           s.metrics.instrument(listenerAgent, s.agentHandler()),
		TLSConfig:         pki.ServerTLSConfig(agentCert, pki.AgentListener, nil),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      MaxWait + 30*time.Second, // a long poll writes at its end
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
		BaseContext:       func(net.Listener) context.Context { return s.polls },
	}
	s.adminSrv = &http.Server{
		Handler:           s.metrics.instrument(listenerAdmin, s.adminHandler()),
		TLSConfig:         pki.ServerTLSConfig(adminCert, pki.AdminListener, nil),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	return s, nil
}

// AgentAddr and AdminAddr are the listeners' addresses.
func (s *Server) AgentAddr() string { return s.agentLn.Addr().String() }

// AdminAddr is the admin listener's address.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// AgentURL is the agent API's URL as enrollment commands give it.
func (s *Server) AgentURL() string { return s.agentURL }

// MetricsAddr is the metrics listener's address, "" without one.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// AdminURL is https://ADDR of the admin listener, with Hosts[0] as host.
func (s *Server) AdminURL() string {
	_, port, _ := net.SplitHostPort(s.AdminAddr())
	return "https://" + net.JoinHostPort(s.cfg.Hosts[0], port)
}

// Run serves both listeners until ctx ends, then stops: long polls end at
// once, other requests get a few seconds. It returns nil after a stop
// that ctx asked for, else the error that ended a listener. Calling it
// again returns at once.
func (s *Server) Run(ctx context.Context) error {
	first := false
	s.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("console: Run called twice")
	}
	n := 2
	errc := make(chan error, 3)
	serve := func(srv *http.Server, ln net.Listener, name string) {
		if srv.TLSConfig != nil {
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			err = fmt.Errorf("console: %s: %w", name, err)
		}
		errc <- err
	}
	go serve(s.agentSrv, s.agentLn, "agent API")
	go serve(s.adminSrv, s.adminLn, "admin API")
	if s.metricsSrv != nil {
		n++
		go serve(s.metricsSrv, s.metricsLn, "metrics")
	}
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.jobLoop(s.polls) // shutdown ends it
	}()
	s.log.Info("console serving", "agent_api", s.AgentAddr(), "agent_url", s.agentURL, "admin_api", s.AdminAddr(), "metrics", s.MetricsAddr())

	var err error
	got := 0
	select {
	case <-ctx.Done():
	case err = <-errc:
		got++
	}
	shutErr := s.shutdown()
	<-loopDone
	for ; got < n; got++ {
		if e := <-errc; err == nil {
			err = e
		}
	}
	return errors.Join(err, shutErr)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shutdown stops the servers, once.
func (s *Server) shutdown() error {
	s.closeOnce.Do(func() {
		s.stopPolls()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		var wg sync.WaitGroup
		srvs := []*http.Server{s.agentSrv, s.adminSrv}
		if s.metricsSrv != nil {
			srvs = append(srvs, s.metricsSrv)
		}
		errs := make([]error, len(srvs))
		for i, srv := range srvs {
			wg.Go(func() {
				if err := srv.Shutdown(ctx); err != nil {
					errs[i] = srv.Close()
				}
			})
		}
		wg.Wait()
		s.closeError = errors.Join(errs...)
		s.log.Info("console stopped")
	})
	return s.closeError
}

// Close closes the listeners of a Server that Run never served; after Run
// it does nothing more.
func (s *Server) Close() error {
	unserved := false
	s.runOnce.Do(func() { unserved = true })
	if unserved { // Run will not start: close the listeners here
		s.stopPolls()
		err := errors.Join(s.agentLn.Close(), s.adminLn.Close())
		if s.metricsLn != nil {
			err = errors.Join(err, s.metricsLn.Close())
		}
		return err
	}
	return s.shutdown()
}

// now is the server's clock.
func (s *Server) now() time.Time { return s.cfg.Now() }

// placeholderPage answers the admin listener's paths outside /api/ when
// the binary has no web page built in.
func placeholderPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>ringtap console</title></head>
<body><h1>ringtap console</h1>
<p>The web UI is not built into this binary. The admin API is served under <code>/api/v1/</code>.</p>
</body></html>
`)
	})
}

// itoa formats a generation.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
