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
)

const serveUsage = `usage: ringtap-console serve --data DIR [flags]

Serves the agent API (mTLS: enrollment, renewal, desired config, heartbeats)
and the admin API with the web page (HTTPS, Authorization: Bearer TOKEN) on
two listeners. The server certificates are issued by the console's CA for
--hosts. The first SIGINT or SIGTERM stops gracefully, a second at once.

`

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	dir := fs.String("data", "", "the data directory `ringtap-console init` created")
	agentListen := fs.String("agent-listen", console.DefaultAgentListen, "address of the agent API (mTLS)")
	adminListen := fs.String("admin-listen", console.DefaultAdminListen, "address of the admin API and web page (HTTPS)")
	db := fs.String("db", "", "PostgreSQL URL (postgres://...); default SQLite in the data directory")
	hosts := fs.String("hosts", strings.Join(console.DefaultHosts, ","), "comma-separated DNS names and IP addresses of the server certificates")
	agentURL := fs.String("agent-url", "", "the agent API's URL as agents reach it, for enrollment commands (default https://FIRST-HOST:AGENT-PORT)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
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
	if *db != "" && !console.IsPostgres(*db) {
		return fmt.Errorf("%w: %w", errUsage, console.ErrBadDB)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, *level)
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
		AgentListen: *agentListen, AdminListen: *adminListen, AgentURL: *agentURL,
		Web:    web.Handler(),
		Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "agent API  %s (agents enroll with --console %s)\nadmin API  %s\n", srv.AgentAddr(), srv.AgentURL(), srv.AdminURL())
	if err := srv.Run(ctx); err != nil {
		return err
	}
	return st.Close()
}
