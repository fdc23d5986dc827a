package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/linkwatch"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

const agentUsage = `usage: ringtap agent --config FILE [--check] [--log-level LEVEL] [--netns PATH]

Runs the captures of FILE until SIGINT or SIGTERM (a second one stops at
once). SIGHUP re-reads FILE and applies only the difference; a file with
any error changes nothing.
`

// runAgent is `ringtap agent`.
func runAgent(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, agentUsage); fs.PrintDefaults() }
	path := fs.String("config", "/etc/ringtap/agent.yaml", "the agent's YAML configuration")
	check := fs.Bool("check", false, "validate the configuration and exit")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	netns := fs.String("netns", "", "capture the interfaces of this network namespace (e.g. /run/netns/x); default the agent's own")
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
	var out []pcapmgr.Desired
	for _, c := range cfg.Captures {
		var f *capture.Filter
		if c.Filter != "" {
			var err error
			if f, err = filter.ForCapture(c.Filter); err != nil {
				return nil, fmt.Errorf("capture %s: filter: %w", c.Name, err)
			}
		}
		sopts, err := c.StorageOptions()
		if err != nil {
			return nil, fmt.Errorf("capture %s: %w", c.Name, err)
		}
		sopts.Application = "ringtap " + version
		d := pcapmgr.Desired{
			Name: c.Name, Interface: c.Interface, Storage: sopts,
			Spec: capture.Spec{Hook: c.Hook, Direction: c.Direction, SnapLen: c.SnapLen, Filter: f, MonitorPort: c.MonitorPort},
		}
		key := c
		key.Line = 0
		d.Key = fmt.Sprintf("%+v", key)
		if c.Output.Export.URL != "" {
			xc, err := cfg.Export.ExportConfig(c.Output.Export.URL, c.Output.Export.DeleteAfterUpload, c.Name)
			if err != nil {
				return nil, fmt.Errorf("capture %s: %w", c.Name, err)
			}
			d.Export, d.UploadGrace = &xc, cfg.Export.UploadGrace
			d.Key += fmt.Sprintf("|%+v", *cfg.Export)
		}
		out = append(out, d)
	}
	return out, nil
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
		ExtraMetrics: []func(io.Writer){mgr.WriteMetrics}, Version: version, StartedAt: started,
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
