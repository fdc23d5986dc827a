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
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/agent/desired"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/jobrunner"
	"github.com/ringtap/ringtap/pkg/linkwatch"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
	"github.com/ringtap/ringtap/pkg/poller"
)

const agentUsage = `usage: ringtap agent [--config FILE] [--state DIR] [--check] [--log-level LEVEL] [--netns PATH]
       ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256 [--state DIR]

Runs the captures of FILE until SIGINT or SIGTERM (a second one stops at
once). SIGHUP re-reads FILE and applies only the difference; a file with
any error changes nothing.

Once enrolled with a console (DIR holds the enrollment), the captures come
from the console and those of FILE are ignored; FILE is optional and gives
the agent-wide settings (http, rings, export, stop_timeout, ...). The last
config applied is kept in DIR: a restart without the console runs it.
`

// runAgent is `ringtap agent`.
func runAgent(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "enroll" {
		return runEnroll(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, agentUsage); fs.PrintDefaults() }
	path := fs.String("config", "/etc/ringtap/agent.yaml", "the agent's YAML configuration")
	check := fs.Bool("check", false, "validate the configuration and exit")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	netns := fs.String("netns", "", "capture the interfaces of this network namespace (e.g. /run/netns/x); default the agent's own")
	stateDir := fs.String("state", certmgr.DefaultStateDir, "the state directory of `ringtap agent enroll`; when it holds an enrollment the captures come from the console")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q: the captures come from --config", errUsage, fs.Arg(0))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, *level)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	enrolled, err := enrollment(*stateDir, log)
	if err != nil {
		return err
	}
	if enrolled != nil {
		return serveEnrolled(agentRun{path: *path, explicit: explicit, netns: *netns, stateDir: *stateDir, check: *check, log: log, stdout: stdout}, enrolled)
	}
	cfg, err := loadAgentConfig(*path)
	if err != nil {
		return err
	}
	if *check {
		ifaces := map[string]bool{}
		for _, c := range cfg.Captures {
			ifaces[c.Interface] = true
		}
		cpus, _ := capture.OnlineCPUs()
		fmt.Fprintf(stdout, "%s: ok: %d captures on %d interfaces, memory estimate %s with %d CPUs\n",
			*path, len(cfg.Captures), len(ifaces), formatBytes(cfg.MemoryEstimate(cpus)), cpus)
		return nil
	}
	return serveAgent(*path, cfg, *netns, log)
}

// loadAgentConfig reads, validates and checks the file; every problem is
// one line naming the file, line and key.
func loadAgentConfig(path string) (*config.Config, error) {
	cpus, err := capture.OnlineCPUs()
	if err != nil {
		cpus = 1
	}
	cfg, err := config.Load(path, config.WithCPUs(cpus))
	if err == nil {
		err = cfg.Check()
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// desiredCaptures turns the configuration into the pcap manager's desired
// set.
func desiredCaptures(cfg *config.Config) ([]pcapmgr.Desired, error) {
	return desired.Captures(cfg, "ringtap "+version)
}

func serveAgent(path string, cfg *config.Config, netns string, log *slog.Logger) error {
	started := time.Now()
	engine, err := capture.NewEngine(capture.EngineOptions{RingSize: cfg.Rings.Size, NetNS: netns, Logger: log})
	if err != nil {
		return err
	}
	desired, err := desiredCaptures(cfg)
	if err != nil {
		engine.Close()
		return err
	}
	links := linkwatch.New(linkwatch.Options{NetNS: netns, Logger: log})
	mgr := pcapmgr.New(pcapmgr.Options{Engine: engine, Links: links, Logger: log})
	if err := mgr.SetDesired(desired); err != nil {
		engine.Close()
		return err
	}
	// Exporters get their upload grace after the captures stopped.
	stopTimeout := cfg.StopTimeout
	if cfg.Export != nil {
		stopTimeout += cfg.Export.UploadGrace
	}
	tree := agent.NewTree(agent.TreeOptions{Logger: log, StopTimeout: stopTimeout})
	tree.Add("linkwatch", links)
	tree.Add("pcapmgr", mgr)
	tree.Add("http", agent.NewHTTPServer(agent.HTTPOptions{
		Listen: cfg.HTTP.Listen, Pprof: cfg.HTTP.Pprof, Tree: tree, Status: mgr, Logger: log,
		ExtraMetrics: []func(io.Writer){mgr.WriteMetrics}, ExtraReady: []func() (bool, string){mgr.Ready},
		Version: version, StartedAt: started,
	}))

	var mu sync.Mutex // the running configuration, replaced by reloads
	running := cfg
	reload := func(ctx context.Context) error {
		next, err := loadAgentConfig(path)
		if err == nil {
			err = reloadable(running, next)
		}
		var d []pcapmgr.Desired
		if err == nil {
			d, err = desiredCaptures(next)
		}
		if err != nil {
			log.Error("reload rejected: the running captures are unchanged", "config", path, "error", strings.ReplaceAll(err.Error(), "\n", "; "))
			return err
		}
		mu.Lock()
		diff := config.Compare(running.Captures, next.Captures)
		running = next
		mu.Unlock()
		log.Info("reloading", "config", path, "added", diff.Added, "changed", diff.Changed, "removed", diff.Removed)
		return mgr.Apply(ctx, d)
	}
	log.Info("agent starting", "version", version, "config", path, "captures", len(cfg.Captures), "http", cfg.HTTP.Listen)
	return runTree(tree, engine, cfg, reload, log)
}

// reloadable refuses the changes a running agent cannot apply.
func reloadable(old, next *config.Config) error {
	var errs []error
	if old.Rings.Size != next.Rings.Size {
		errs = append(errs, fmt.Errorf("%s: rings.size changed from %d to %d: the rings are shared by running captures, restart the agent to change it", next.Source, old.Rings.Size, next.Rings.Size))
	}
	if old.HTTP != next.HTTP {
		errs = append(errs, fmt.Errorf("%s: http changed: restart the agent to move its HTTP server", next.Source))
	}
	return errors.Join(errs...)
}

func formatBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// enrollment returns the certificate manager of the enrollment in
// stateDir, nil when the agent is not enrolled.
func enrollment(stateDir string, log *slog.Logger) (*certmgr.Manager, error) {
	m, err := certmgr.New(stateDir, certmgr.Options{Logger: log})
	switch {
	case errors.Is(err, certmgr.ErrNotEnrolled):
		return nil, nil
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("%w: cannot read the state directory %s: run the agent as root or give --state a directory it can read", errUsage, stateDir)
	case err != nil:
		return nil, fmt.Errorf("%w: state directory %s: %w", errUsage, stateDir, err)
	}
	return m, nil
}

// agentRun is the command line of an enrolled `ringtap agent`.
type agentRun struct {
	path     string // --config
	explicit bool   // --config was given
	netns    string
	stateDir string
	check    bool
	log      *slog.Logger
	stdout   io.Writer
}

// loadLocalConfig reads the local file of an enrolled agent: optional
// unless named with --config, its captures allowed to be missing (they
// come from the console). It returns the file's bytes (nil without a
// file) and the checked config.
func loadLocalConfig(r agentRun) ([]byte, *config.Config, error) {
	data, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) && !r.explicit {
		data, err = nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read agent config: %w", err)
	}
	cpus, cerr := capture.OnlineCPUs()
	if cerr != nil {
		cpus = 1
	}
	cfg, err := config.Parse(data, r.path, config.WithCPUs(cpus), config.WithoutCaptures())
	if err == nil {
		err = cfg.Check()
	}
	if err != nil {
		return nil, nil, err
	}
	return data, cfg, nil
}

// serveEnrolled runs an agent enrolled with a console: the certificate
// manager and the poller join the tree, and the console's config replaces
// the local file's captures.
func serveEnrolled(r agentRun, certs *certmgr.Manager) error {
	log := r.log
	base, cfg, err := loadLocalConfig(r)
	if err != nil {
		return err
	}
	if r.check {
		fmt.Fprintf(r.stdout, "%s: ok: enrolled with %s as device %s: the console's captures replace the file's %d\n",
			r.path, certs.ConsoleURL(), certs.DeviceID(), len(cfg.Captures))
		return nil
	}
	if len(cfg.Captures) > 0 {
		log.Warn("enrolled with a console: its config replaces the captures of the local file, which are not run",
			"config", r.path, "ignored_captures", len(cfg.Captures), "console", certs.ConsoleURL())
	}
	started := time.Now()
	engine, err := capture.NewEngine(capture.EngineOptions{RingSize: cfg.Rings.Size, NetNS: r.netns, Logger: log})
	if err != nil {
		return err
	}
	links := linkwatch.New(linkwatch.Options{NetNS: r.netns, Logger: log})
	mgr := pcapmgr.New(pcapmgr.Options{Engine: engine, Links: links, Logger: log})
	cpus, cerr := capture.OnlineCPUs()
	if cerr != nil {
		cpus = 1
	}
	host, _ := os.Hostname()
	var mu sync.Mutex // the running local file, replaced by reloads
	running := cfg
	jobsDir := cfg.Jobs.DirIn(r.stateDir)
	jobs, err := jobrunner.New(jobrunner.Options{
		ConsoleURL: certs.ConsoleURL(), Transport: certs.Transport, Capture: jobrunner.Manager(mgr),
		Dir: jobsDir, Limits: cfg.Jobs, Host: host, Application: "ringtap " + version, Logger: log,
		Export: func() *config.Export {
			mu.Lock()
			defer mu.Unlock()
			return running.Export
		},
	})
	if err != nil {
		engine.Close()
		return err
	}
	poll, err := poller.New(poller.Options{
		ConsoleURL: certs.ConsoleURL(), Transport: certs.Transport, Enrolled: certs.Enrolled, StateDir: r.stateDir,
		Manager: mgr, Jobs: jobs, Base: base, BaseSource: r.path, ConfigOptions: []config.Option{config.WithCPUs(cpus)},
		Application: "ringtap " + version,
		Interfaces: func() []string {
			var names []string
			for name := range links.Links() {
				names = append(names, name)
			}
			return names
		},
		Certificate: func() poller.CertificateStatus {
			s := certs.Status()
			return poller.CertificateStatus{NotAfter: s.NotAfter, NeedsReenroll: s.NeedsReenroll, Reason: s.Reason}
		},
		OnRefused: certs.Refused, DeviceID: certs.DeviceID,
		Hostname: host, MachineID: machineID(), AgentVersion: version, Logger: log,
	})
	if err != nil {
		engine.Close()
		return err
	}
	// Exporters get their upload grace after the captures stopped.
	stopTimeout := cfg.StopTimeout
	if cfg.Export != nil {
		stopTimeout += cfg.Export.UploadGrace
	}
	tree := agent.NewTree(agent.TreeOptions{Logger: log, StopTimeout: stopTimeout})
	tree.Add("linkwatch", links)
	tree.Add("pcapmgr", mgr)
	tree.Add("certmgr", certs)
	tree.Add("poller", poll)
	tree.Add("jobrunner", jobs)
	tree.Add("http", agent.NewHTTPServer(agent.HTTPOptions{
		Listen: cfg.HTTP.Listen, Pprof: cfg.HTTP.Pprof, Tree: tree, Status: mgr, Logger: log,
		ExtraMetrics: []func(io.Writer){mgr.WriteMetrics, certs.WriteMetrics, jobs.WriteMetrics},
		ExtraReady:   []func() (bool, string){certs.Ready, mgr.Ready},
		ExtraStatus: map[string]func() any{
			"certificate": func() any { return certs.Status() },
			"console":     func() any { return poll.Status() },
			"jobs":        func() any { return jobs.Status() },
		},
		Version: version, StartedAt: started,
	}))

	reload := func(ctx context.Context) error {
		data, next, err := loadLocalConfig(r)
		if err == nil {
			err = reloadable(running, next)
		}
		if err == nil && next.Jobs.DirIn(r.stateDir) != jobsDir {
			err = fmt.Errorf("%s: jobs.dir changed from %s to %s: the runs in it are carried on from there, restart the agent to move it", r.path, jobsDir, next.Jobs.DirIn(r.stateDir))
		}
		if err == nil {
			err = poll.Reload(ctx, data, r.path)
		}
		if err == nil {
			err = jobs.SetLimits(next.Jobs)
		}
		if err != nil {
			log.Error("reload rejected: the running captures are unchanged", "config", r.path, "error", strings.ReplaceAll(err.Error(), "\n", "; "))
			return err
		}
		mu.Lock()
		running = next
		mu.Unlock()
		log.Info("reloaded the local config; the captures are the console's", "config", r.path)
		return nil
	}
	log.Info("agent starting", "version", version, "console", certs.ConsoleURL(), "device_id", certs.DeviceID(),
		"state", r.stateDir, "config", r.path, "http", cfg.HTTP.Listen)
	return runTree(tree, engine, cfg, reload, log)
}

// runTree runs the agent's tree under the two-step stop, runs the shutdown
// hook and releases the interfaces; the error says whether the shutdown
// was clean.
func runTree(tree *agent.Tree, engine *capture.Engine, cfg *config.Config, reload func(context.Context) error, log *slog.Logger) error {
	var hook []string
	if cfg.ShutdownHook != "" {
		hook = []string{cfg.ShutdownHook}
	}
	clean, err := agent.RunMain(context.Background(), tree, agent.MainOptions{
		Logger: log, Reload: reload, ShutdownHook: hook, ShutdownHookTimeout: cfg.ShutdownHookTimeout,
	})
	if errors.Is(err, agent.ErrHardStop) {
		// At once: the kernel detaches the bpf_links when the process
		// exits (clsact filters are removed by the next start).
		return fmt.Errorf("agent: %w", err)
	}
	if cerr := engine.Close(); cerr != nil {
		log.Error("release interfaces", "error", cerr)
		clean = false
	}
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if !clean {
		return errors.New("agent: shutdown was not clean (see the log)")
	}
	return nil
}
