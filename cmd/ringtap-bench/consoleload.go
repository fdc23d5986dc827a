package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/consoleload"
)

// consoleLoadCommand runs the console load benchmark.
const consoleLoadCommand = "console-load"

type consoleLoadReport struct {
	Machine string                `json:"machine"`
	Command string                `json:"command"`
	Started time.Time             `json:"started"`
	Results []*consoleload.Result `json:"results"`
}

// runConsoleLoad runs `ringtap-bench console-load`: simulated agents
// against a ringtap-console process, for each store in turn.
func runConsoleLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(consoleLoadCommand, flag.ContinueOnError)
	var cfg consoleload.Config
	stores := fs.String("stores", "sqlite,postgres", "comma-separated stores to measure, one after the other: sqlite, postgres (a throwaway cluster, durable settings), postgres:N (with a pool of N connections instead of the console's default)")
	jsonPath := fs.String("json", "", "write the full report here")
	fs.StringVar(&cfg.ConsoleBin, "console", "bin/ringtap-console", "the ringtap-console binary")
	fs.IntVar(&cfg.Agents, "agents", 1000, "simulated agents, each with its own key, certificate and mTLS connections")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 10*time.Second, "each agent's heartbeat interval")
	fs.DurationVar(&cfg.Wait, "wait", 30*time.Second, "the long poll's wait")
	fs.DurationVar(&cfg.Steady, "steady", time.Minute, "how long the idle fleet is measured")
	fs.IntVar(&cfg.Rounds, "rounds", 5, "rounds of a change to every device's captures")
	fs.IntVar(&cfg.PutWorkers, "put-workers", 16, "admin API PUTs in flight during a round")
	fs.IntVar(&cfg.BurstSenders, "burst-senders", 64, "heartbeats in flight during the burst")
	fs.DurationVar(&cfg.Burst, "burst", 10*time.Second, "how long heartbeats are sent back to back")
	fs.IntVar(&cfg.EnrollWorkers, "enroll-workers", 16, "enrollments in flight")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", consoleLoadCommand, fs.Arg(0))
	}
	if _, err := os.Stat(cfg.ConsoleBin); err != nil {
		return fmt.Errorf("%s: -console %s: %w (make build makes bin/ringtap-console)", consoleLoadCommand, cfg.ConsoleBin, err)
	}
	cfg.Logf = func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	rep := consoleLoadReport{Machine: machine(), Command: strings.Join(os.Args, " "), Started: time.Now()}
	for _, s := range strings.Split(*stores, ",") {
		c := cfg
		c.Store = strings.TrimSpace(s)
		if name, pool, ok := strings.Cut(c.Store, ":"); ok {
			n, err := strconv.Atoi(pool)
			if name != "postgres" || err != nil || n < 1 {
				return fmt.Errorf("%s: -stores %q: a pool size goes with postgres only, as postgres:16", consoleLoadCommand, c.Store)
			}
			c.Store, c.PGPoolMaxConns = name, n
		}
		r, err := consoleload.Run(ctx, c)
		if r != nil {
			rep.Results = append(rep.Results, r)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("%s (%s): %w", consoleLoadCommand, c.Store, err), writeJSON(*jsonPath, rep))
		}
	}
	consoleload.WriteTable(os.Stdout, rep.Results)
	return writeJSON(*jsonPath, rep)
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
