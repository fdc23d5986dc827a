package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/web"
	"github.com/ringtap/ringtap/pkg/signals"
	"github.com/ringtap/ringtap/pkg/storage"
)

const serveUsage = `usage: ringtap-console serve --data DIR [flags]

Serves the agent API (mTLS: enrollment, renewal, desired config, heartbeats)
and the admin API with the web page (HTTPS, Authorization: Bearer TOKEN) on
two listeners. The server certificates are issued by the console's CA for
--hosts. The first SIGINT or SIGTERM stops gracefully, a second at once.

Capture jobs (POST /api/v1/jobs) are bounded by the --job-* flags: a job
that asks for more is refused with the flag's name. A job that gives no
stop condition runs 60s; one without max_bytes gets --job-max-bytes. A run
whose device sends nothing for --job-silence fails; a run no device
accepts before its expires_in ends expired. Results uploaded to the
console are kept in DIR/jobs/<job id>/<device id>.pcapng for
--job-retention after the job ended, and within --job-results-max-bytes
and --job-results-min-free: past either, the results of the jobs that
ended first are deleted (a download then answers 410 saying why).

`

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	dir := fs.String("data", "", "the data directory `ringtap-console init` created")
	agentListen := fs.String("agent-listen", console.DefaultAgentListen, "address of the agent API (mTLS)")
	adminListen := fs.String("admin-listen", console.DefaultAdminListen, "address of the admin API and web page (HTTPS)")
	metricsListen := fs.String("metrics-listen", "", "address of /metrics, plain HTTP, such as 127.0.0.1:9274 (default: none)")
	pprofOn := fs.Bool("pprof", false, "serve /debug/pprof/ on the metrics listener too (needs --metrics-listen)")
	db := fs.String("db", "", "PostgreSQL URL (postgres://...); default SQLite in the data directory")
	hosts := fs.String("hosts", strings.Join(console.DefaultHosts, ","), "comma-separated DNS names and IP addresses of the server certificates")
	agentURL := fs.String("agent-url", "", "the agent API's URL as agents reach it, for enrollment commands (default https://FIRST-HOST:AGENT-PORT)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	jobMaxDuration := fs.Duration("job-max-duration", console.DefaultJobMaxDuration, "the longest duration a capture job may ask for, and the duration of one with only a packet or byte limit")
	jobMaxBytes := fs.String("job-max-bytes", "1GiB", "the largest result a capture job may ask for (such as 500MB or 2GiB), and the limit of one that asks none")
	jobMaxPackets := fs.Uint64("job-max-packets", 0, "the most packets a capture job may ask for, and the limit of one that asks none (0: no cap)")
	jobMaxExpiry := fs.Duration("job-max-expiry", console.DefaultJobMaxExpiry, "the longest a capture job may wait for its devices to accept it (its expires_in)")
	jobSilence := fs.Duration("job-silence", console.DefaultJobSilence, "a job run whose device sends nothing for this long fails")
	jobRetention := fs.Duration("job-retention", console.DefaultJobRetention, "delete the results a job stored in DIR/jobs this long after it ended (0: keep them)")
	resultsMax := fs.String("job-results-max-bytes", "0", "bound the results in DIR/jobs (such as 50GiB): past it, those of the jobs that ended first are deleted (0: no bound)")
	resultsFree := fs.String("job-results-min-free", console.DefaultJobResultsMinFree.String(), "keep this much free on DIR's file system (a percentage or a size) by deleting the results of the jobs that ended first (0: no bound)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *dir == "" {
		return fmt.Errorf("%w: --data DIR is required: the directory `ringtap-console init` created", errUsage)
	}
	if *pprofOn && *metricsListen == "" {
		return fmt.Errorf("%w: --pprof serves on the metrics listener: give --metrics-listen ADDR too", errUsage)
	}
	if *db != "" && !console.IsPostgres(*db) {
		return fmt.Errorf("%w: %w", errUsage, console.ErrBadDB)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, *level)
	}
	policy, err := jobPolicy(*jobMaxDuration, *jobMaxBytes, *jobMaxPackets, *jobMaxExpiry, *jobSilence, *jobRetention)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if policy.ResultsMaxBytes, policy.ResultsMinFree, err = resultsBounds(*resultsMax, *resultsFree); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var hostList []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hostList = append(hostList, h)
		}
	}
	if len(hostList) == 0 {
		return fmt.Errorf("%w: --hosts is empty: give the names or addresses agents reach the console by", errUsage)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))

	ca, err := pki.Load(*dir)
	if err != nil {
		return err
	}
	ctx, stop := signals.TwoStepWith(context.Background(), signals.Handlers{
		Stop: func(s os.Signal) { log.Info("stopping; a second signal stops at once", "signal", s.String()) },
		Hard: func(os.Signal) {
			fmt.Fprintln(stderr, "ringtap-console: second signal, stopping now")
			os.Exit(130)
		},
	})
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	st, err := console.OpenStore(openCtx, *dir, *db, store.Options{Logger: log})
	cancel()
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	srv, err := console.New(console.Config{
		Store: st, CA: ca, DataDir: *dir, Hosts: hostList,
		AgentListen: *agentListen, AdminListen: *adminListen, MetricsListen: *metricsListen, Pprof: *pprofOn, AgentURL: *agentURL,
		JobPolicy: policy,
		Web:       web.Handler(),
		Logger:    log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent API  %s (agents enroll with --console %s)\nadmin API  %s\n", srv.AgentAddr(), srv.AgentURL(), srv.AdminURL())
	if a := srv.MetricsAddr(); a != "" {
		fmt.Fprintf(stdout, "metrics    http://%s/metrics\n", a)
	}
	if err := srv.Run(ctx); err != nil {
		return err
	}
	return st.Close()
}

// jobPolicy checks the --job-* flags.
func jobPolicy(maxDuration time.Duration, maxBytes string, maxPackets uint64, maxExpiry, silence, retention time.Duration) (console.JobPolicy, error) {
	var p console.JobPolicy
	n, err := storage.ParseSize(maxBytes)
	switch {
	case err != nil:
		return p, fmt.Errorf("--job-max-bytes %q: give a size such as 1GiB or 500MB", maxBytes)
	case n < 1<<20:
		return p, fmt.Errorf("--job-max-bytes %s is below 1MiB: give a size such as 1GiB", maxBytes)
	case maxDuration < time.Second:
		return p, fmt.Errorf("--job-max-duration %s: give 1s or more, such as 1h", maxDuration)
	case maxExpiry < time.Second:
		return p, fmt.Errorf("--job-max-expiry %s: give 1s or more, such as 24h", maxExpiry)
	case silence < time.Second:
		return p, fmt.Errorf("--job-silence %s: give 1s or more, such as 2m (agents report every second)", silence)
	case retention < 0 || (retention > 0 && retention < time.Minute):
		return p, fmt.Errorf("--job-retention %s: give 1m or more, such as 720h, or 0 to keep results", retention)
	}
	return console.JobPolicy{MaxDuration: maxDuration, MaxBytes: uint64(n), MaxPackets: maxPackets, MaxExpiry: maxExpiry,
		Silence: silence, Retention: retention}, nil
}

// resultsBounds checks --job-results-max-bytes and --job-results-min-free.
func resultsBounds(maxBytes, minFree string) (int64, storage.Space, error) {
	n, err := storage.ParseSize(maxBytes)
	switch {
	case err != nil:
		return 0, storage.Space{}, fmt.Errorf("--job-results-max-bytes %q: give a size such as 50GiB, or 0 for no bound", maxBytes)
	case n > 0 && n < 1<<20:
		return 0, storage.Space{}, fmt.Errorf("--job-results-max-bytes %s is below 1MiB: give a size such as 50GiB, or 0 for no bound", maxBytes)
	}
	sp, err := storage.ParseSpace(minFree)
	if err != nil || sp.Percent >= 100 || sp.Percent < 0 || sp.Bytes < 0 {
		return 0, storage.Space{}, fmt.Errorf("--job-results-min-free %q: give a percentage below 100%% (such as 5%%) or a size (such as 20GiB), or 0 for no bound", minFree)
	}
	return n, sp, nil
}
