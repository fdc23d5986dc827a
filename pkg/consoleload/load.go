package consoleload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
)

// Config is one run. Zero values take the defaults in their comments.
type Config struct {
	// ConsoleBin is the ringtap-console binary (required).
	ConsoleBin string `json:"-"`
	// Store is "sqlite" or "postgres" (a throwaway cluster).
	Store string `json:"store"`
	// Agents: 1000.
	Agents int `json:"agents"`
	// HeartbeatInterval of each agent: 10s. Wait is the long poll's: 30s.
	HeartbeatInterval time.Duration `json:"heartbeat_interval"`
	Wait              time.Duration `json:"wait"`
	// Steady is how long the fleet idles while measured: 60s.
	Steady time.Duration `json:"steady"`
	// Rounds of changes to every device: 5. PutWorkers send the PUTs: 16.
	Rounds     int `json:"rounds"`
	PutWorkers int `json:"put_workers"`
	// BurstSenders send heartbeats back to back for Burst: 64, 10s.
	BurstSenders int           `json:"burst_senders"`
	Burst        time.Duration `json:"burst"`
	// EnrollWorkers enroll at once: 16.
	EnrollWorkers int `json:"enroll_workers"`
	// PGPoolMaxConns sets pool_max_conns in the console's PostgreSQL URL
	// (0: the console's default, postgres.DefaultMaxConns).
	PGPoolMaxConns int `json:"pg_pool_max_conns,omitempty"`
	// StateDir holds the agents' state (tmpfs is best: the agents stand
	// for other machines, their disks are not the console's); "": a
	// temporary directory under /dev/shm, else os.TempDir. DataDir holds
	// the console's data directory; "": a temporary one under
	// os.TempDir (a disk, as a console's would be).
	StateDir string `json:"-"`
	DataDir  string `json:"-"`
	// Logf reports progress; nil: silent.
	Logf func(format string, args ...any) `json:"-"`
}

func (c *Config) defaults() error {
	if c.ConsoleBin == "" {
		return errors.New("console load: no ringtap-console binary")
	}
	switch c.Store {
	case "":
		c.Store = "sqlite"
	case "sqlite", "postgres":
	default:
		return fmt.Errorf("console load: store %q: use sqlite or postgres", c.Store)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Agents, 1000)
	def(&c.Rounds, 5)
	def(&c.PutWorkers, 16)
	def(&c.BurstSenders, 64)
	def(&c.EnrollWorkers, 16)
	defd(&c.HeartbeatInterval, 10*time.Second)
	defd(&c.Wait, 30*time.Second)
	defd(&c.Steady, time.Minute)
	defd(&c.Burst, 10*time.Second)
	c.BurstSenders = min(c.BurstSenders, c.Agents)
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Config Config `json:"config"`

	// Enrollment: Agents install keys and enrollments.
	EnrollSeconds float64 `json:"enroll_seconds"`
	EnrollPerSec  float64 `json:"enroll_per_sec"`

	Steady Usage `json:"steady"`
	// SteadyHeartbeats are the heartbeats the console accepted over
	// Steady (each agent also keeps one long poll open throughout).
	SteadyHeartbeats int     `json:"steady_heartbeats"`
	SteadyHBPerSec   float64 `json:"steady_heartbeats_per_sec"`

	Rounds []Round `json:"rounds"`
	// Change latency over every device of every round (ms): from the
	// device's PUT sent to its agent's apply.
	ChangeP50ms float64 `json:"change_p50_ms"`
	ChangeP99ms float64 `json:"change_p99_ms"`
	ChangeMaxms float64 `json:"change_max_ms"`
	// Fleet time over rounds (ms): first PUT to the last agent's apply.
	FleetP50ms float64 `json:"fleet_p50_ms"`
	FleetMaxms float64 `json:"fleet_max_ms"`
	Changes    Usage   `json:"changes"`

	Burst         Usage   `json:"burst"`
	BurstHB       int     `json:"burst_heartbeats"`
	BurstHBPerSec float64 `json:"burst_heartbeats_per_sec"`
	BurstP50ms    float64 `json:"burst_p50_ms"`
	BurstP99ms    float64 `json:"burst_p99_ms"`
	BurstErrors   int     `json:"burst_errors"`
	BurstCPUus    float64 `json:"burst_cpu_us_per_heartbeat"`
	ConsoleHWMMiB float64 `json:"console_peak_rss_mib"`
	// DevicesListMs is how long GET /api/v1/devices took for the whole
	// fleet (the web page's first request), after the changes.
	DevicesListMs float64 `json:"devices_list_ms"`
	// MetricsScrapeMs is how long GET /metrics took for the whole fleet,
	// once the fleet was as the admin API showed it.
	MetricsScrapeMs float64 `json:"metrics_scrape_ms"`
	SQLiteFileSize  int64   `json:"sqlite_bytes,omitempty"`
}

// Round is one change of every device's captures.
type Round struct {
	PutSeconds float64 `json:"put_seconds"`
	PutPerSec  float64 `json:"put_per_sec"`
	PutP50ms   float64 `json:"put_p50_ms"`
	PutP99ms   float64 `json:"put_p99_ms"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Maxms      float64 `json:"max_ms"`
	FleetMs    float64 `json:"fleet_ms"`
	// Missing devices never got the round's change within a minute.
	Missing int `json:"missing"`
}

// Run runs the four phases against a new console. A device that misses a
// change, a failed enrollment or a console that exits is an error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	res := &Result{Config: cfg}

	dataRoot, err := os.MkdirTemp(cfg.DataDir, "ringtap-console-load-")
	if err != nil {
		return nil, fmt.Errorf("console load: %w", err)
	}
	defer os.RemoveAll(dataRoot)
	stateRoot := cfg.StateDir
	if stateRoot == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			stateRoot = "/dev/shm"
		}
	}
	if stateRoot, err = os.MkdirTemp(stateRoot, "ringtap-agents-"); err != nil {
		return nil, fmt.Errorf("console load: %w", err)
	}
	defer os.RemoveAll(stateRoot)

	var dbURL string
	var db *pgtest.Cluster
	if cfg.Store == "postgres" {
		cfg.Logf("starting a PostgreSQL cluster (durable settings)")
		if db, err = pgtest.StartClusterWith(pgtest.ClusterOptions{Durable: true}); err != nil {
			return nil, fmt.Errorf("console load: %w", err)
		}
		defer db.Stop()
		dbURL = db.URL("postgres")
		if cfg.PGPoolMaxConns > 0 {
			dbURL += "&pool_max_conns=" + strconv.Itoa(cfg.PGPoolMaxConns)
		}
	}
	c, err := startConsole(ctx, cfg.ConsoleBin, dataRoot+"/console", dbURL, cfg.PutWorkers)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	m := &meter{console: c.pid(), db: db}

	// 1. Enrollment.
	cfg.Logf("enrolling %d agents", cfg.Agents)
	t0 := time.Now()
	agents := make([]*simAgent, cfg.Agents)
	if err := parallel(ctx, cfg.Agents, cfg.EnrollWorkers, func(ctx context.Context, i int) error {
		key, err := c.installKey(ctx)
		if err != nil {
			return err
		}
		a, err := enroll(ctx, c, stateRoot, i, key, quiet)
		if err != nil {
			return err
		}
		agents[i] = a
		return a.newPoller(cfg.Wait, cfg.HeartbeatInterval, quiet)
	}); err != nil {
		return nil, errors.Join(err, c.exited())
	}
	res.EnrollSeconds = time.Since(t0).Seconds()
	res.EnrollPerSec = float64(cfg.Agents) / res.EnrollSeconds

	// 2. Steady: start the pollers over one heartbeat interval.
	cfg.Logf("starting %d pollers over %s", cfg.Agents, cfg.HeartbeatInterval)
	runCtx, stopAgents := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() { stopAgents(); running.Wait() }()
	for i, a := range agents {
		delay := time.Duration(int64(cfg.HeartbeatInterval) * int64(i) / int64(len(agents)))
		running.Add(1)
		go func() {
			defer running.Done()
			select {
			case <-runCtx.Done():
				return
			case <-time.After(delay):
			}
			_ = a.poller.Run(runCtx)
		}()
	}
	// Every agent's first heartbeat, then one more interval so that the
	// start's burst is behind.
	if err := waitFor(ctx, 2*cfg.HeartbeatInterval+time.Minute, func() bool {
		n := 0
		for _, a := range agents {
			if !a.poller.Status().LastHeartbeat.IsZero() {
				n++
			}
		}
		return n == len(agents)
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("console load: not every agent's first heartbeat was accepted: %w", err), c.exited())
	}
	sleep(ctx, cfg.HeartbeatInterval)
	for _, a := range agents {
		a.heartbeatsSince()
	}
	cfg.Logf("steady for %s", cfg.Steady)
	u0, err := m.sample()
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(cfg.HeartbeatInterval / 20)
	end := time.After(cfg.Steady)
steady:
	for {
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
			for _, a := range agents {
				res.SteadyHeartbeats += a.heartbeatsSince()
			}
		case <-end:
			break steady
		}
	}
	tick.Stop()
	for _, a := range agents {
		res.SteadyHeartbeats += a.heartbeatsSince()
	}
	u1, err := m.sample()
	if err != nil {
		return nil, err
	}
	res.Steady = usage(u0, u1)
	res.SteadyHBPerSec = float64(res.SteadyHeartbeats) / res.Steady.Seconds
	if err := c.exited(); err != nil {
		return nil, err
	}

	// 3. Changes.
	gens := make([]int64, len(agents))
	var all []float64
	var fleets []float64
	u0, err = m.sample()
	if err != nil {
		return nil, err
	}
	for r := range cfg.Rounds {
		cfg.Logf("round %d of %d: changing the captures of %d devices", r+1, cfg.Rounds, len(agents))
		rd, lat, err := changeRound(ctx, c, agents, gens, r, cfg.PutWorkers)
		if err != nil {
			return nil, errors.Join(err, c.exited())
		}
		res.Rounds = append(res.Rounds, rd)
		all = append(all, lat...)
		fleets = append(fleets, rd.FleetMs)
		if rd.Missing > 0 {
			return res, fmt.Errorf("console load: round %d: %d of %d agents never got the change", r+1, rd.Missing, len(agents))
		}
		// Let the heartbeats that follow each apply settle.
		sleep(ctx, min(2*time.Second, cfg.HeartbeatInterval/2))
	}
	u1, err = m.sample()
	if err != nil {
		return nil, err
	}
	res.Changes = usage(u0, u1)
	slices.Sort(all)
	slices.Sort(fleets)
	res.ChangeP50ms, res.ChangeP99ms, res.ChangeMaxms = quantile(all, 0.5), quantile(all, 0.99), all[len(all)-1]
	res.FleetP50ms, res.FleetMaxms = quantile(fleets, 0.5), fleets[len(fleets)-1]

	// What the admin sees: every device online, running the last
	// generation, its two captures running.
	if res.DevicesListMs, err = checkDevices(ctx, c, agents, gens); err != nil {
		return res, errors.Join(err, c.exited())
	}
	if res.MetricsScrapeMs, err = checkMetrics(ctx, c, len(agents)); err != nil {
		return res, errors.Join(err, c.exited())
	}

	// 4. Heartbeat burst.
	cfg.Logf("heartbeat burst: %d senders for %s", cfg.BurstSenders, cfg.Burst)
	if err := burst(ctx, cfg, agents, m, res); err != nil {
		return nil, errors.Join(err, c.exited())
	}
	if hwm, err := statusKiB(c.pid(), "VmHWM"); err == nil {
		res.ConsoleHWMMiB = float64(hwm) / 1024
	}
	if cfg.Store == "sqlite" {
		res.SQLiteFileSize = c.dbSize()
	}
	stopAgents()
	running.Wait()
	if err := c.stop(); err != nil {
		return nil, err
	}
	return res, nil
}

// changeRound changes the captures of every device once and waits for
// every agent to have the change. It returns the latencies (ms).
func changeRound(ctx context.Context, c *consoleProc, agents []*simAgent, gens []int64, round, workers int) (Round, []float64, error) {
	name := "r" + strconv.Itoa(round)
	caps := []store.Capture{
		{Name: name, Interface: "eth0", Filter: fmt.Sprintf("tcp port %d", 1000+round), SnapLen: 256,
			Output: store.Output{Dir: "/var/lib/ringtap/" + name, Compress: "zstd"}},
		{Name: name + "-dns", Interface: "eth1", Filter: "udp port 53",
			Output: store.Output{Dir: "/var/lib/ringtap/" + name + "-dns"}},
	}
	sent := make([]time.Time, len(agents))
	putMs := make([]float64, len(agents))
	start := time.Now()
	err := parallel(ctx, len(agents), workers, func(ctx context.Context, i int) error {
		var answer struct {
			Generation int64 `json:"generation"`
		}
		h := http.Header{"If-Match": {strconv.FormatInt(gens[i], 10)}}
		sent[i] = time.Now()
		if err := c.do(ctx, http.MethodPut, "/api/v1/devices/"+agents[i].deviceID+"/captures", h,
			map[string]any{"captures": caps}, &answer, http.StatusOK); err != nil {
			return err
		}
		putMs[i] = ms(time.Since(sent[i]))
		gens[i] = answer.Generation
		return nil
	})
	if err != nil {
		return Round{}, nil, err
	}
	var rd Round
	rd.PutSeconds = time.Since(start).Seconds()
	rd.PutPerSec = float64(len(agents)) / rd.PutSeconds
	slices.Sort(putMs)
	rd.PutP50ms, rd.PutP99ms = quantile(putMs, 0.5), quantile(putMs, 0.99)
	_ = waitFor(ctx, time.Minute, func() bool {
		for _, a := range agents {
			if _, ok := a.mgr.appliedAt(name); !ok {
				return false
			}
		}
		return true
	})
	var lat []float64
	var last time.Time
	for i, a := range agents {
		t, ok := a.mgr.appliedAt(name)
		if !ok {
			rd.Missing++
			continue
		}
		lat = append(lat, ms(t.Sub(sent[i])))
		if t.After(last) {
			last = t
		}
	}
	if len(lat) == 0 {
		return rd, nil, nil
	}
	slices.Sort(lat)
	rd.P50ms, rd.P99ms, rd.Maxms = quantile(lat, 0.5), quantile(lat, 0.99), lat[len(lat)-1]
	rd.FleetMs = ms(last.Sub(start))
	return rd, lat, nil
}

// checkDevices checks through the admin API that every device is
// online, has applied its newest generation and runs both captures, as
// its heartbeats said. It returns how long the listing took (ms).
func checkDevices(ctx context.Context, c *consoleProc, agents []*simAgent, gens []int64) (float64, error) {
	want := map[string]int64{}
	for i, a := range agents {
		want[a.deviceID] = gens[i]
	}
	var took float64
	var last string
	err := waitFor(ctx, 30*time.Second, func() bool {
		var list struct {
			Devices []struct {
				ID                string `json:"id"`
				State             string `json:"state"`
				Generation        int64  `json:"generation"`
				AppliedGeneration int64  `json:"applied_generation"`
				CapturesRunning   int    `json:"captures_running"`
			} `json:"devices"`
		}
		t := time.Now()
		if err := c.do(ctx, http.MethodGet, "/api/v1/devices", nil, nil, &list, http.StatusOK); err != nil {
			last = err.Error()
			return false
		}
		took = ms(time.Since(t))
		if len(list.Devices) != len(agents) {
			last = fmt.Sprintf("%d devices listed, want %d", len(list.Devices), len(agents))
			return false
		}
		for _, d := range list.Devices {
			g, ok := want[d.ID]
			if !ok || d.State != "online" || d.Generation != g || d.AppliedGeneration != g || d.CapturesRunning != 2 {
				last = fmt.Sprintf("device %s: %+v, want online at generation %d with 2 captures running", d.ID, d, g)
				return false
			}
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("console load: the admin API does not show the fleet as its agents run it: %s: %w", last, err)
	}
	return took, nil
}

// checkMetrics checks that the console's /metrics counts the fleet as
// checkDevices saw it: every device online, at its generation, both
// captures running. It returns how long the scrape took (ms).
func checkMetrics(ctx context.Context, c *consoleProc, agents int) (float64, error) {
	got, took, err := c.scrape(ctx)
	if err != nil {
		return 0, fmt.Errorf("console load: %w", err)
	}
	for name, want := range map[string]float64{
		"ringtap_console_store_up":                     1,
		`ringtap_console_devices{state="online"}`:      float64(agents),
		`ringtap_console_devices{state="stale"}`:       0,
		"ringtap_console_devices_config_behind":        0,
		`ringtap_console_captures{state="running"}`:    float64(2 * agents),
		`ringtap_console_captures{state="failed"}`:     0,
		"ringtap_console_devices_with_errors":          0,
		"ringtap_console_devices_needing_reenrollment": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			return 0, fmt.Errorf("console load: /metrics has %s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	return ms(took), nil
}

// burst sends heartbeats back to back from cfg.BurstSenders goroutines,
// sender k for agents k, k+S, k+2S ... in turn.
func burst(ctx context.Context, cfg Config, agents []*simAgent, m *meter, res *Result) error {
	var (
		mu    sync.Mutex
		lat   []float64
		errs  atomic.Int64
		first error
		wg    sync.WaitGroup
	)
	u0, err := m.sample()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(cfg.Burst)
	for k := range cfg.BurstSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for j := k; time.Now().Before(deadline) && ctx.Err() == nil; j += cfg.BurstSenders {
				a := agents[j%len(agents)]
				t := time.Now()
				if err := a.heartbeat(ctx); err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						first = err
						mu.Unlock()
					}
					continue
				}
				mine = append(mine, ms(time.Since(t)))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	u1, err := m.sample()
	if err != nil {
		return err
	}
	res.Burst = usage(u0, u1)
	res.BurstErrors = int(errs.Load())
	if res.BurstErrors > 0 {
		return fmt.Errorf("console load: %d heartbeats of the burst failed, the first: %w", res.BurstErrors, first)
	}
	if len(lat) == 0 {
		return errors.New("console load: the burst sent no heartbeat")
	}
	slices.Sort(lat)
	res.BurstHB = len(lat)
	res.BurstHBPerSec = float64(len(lat)) / res.Burst.Seconds
	res.BurstP50ms, res.BurstP99ms = quantile(lat, 0.5), quantile(lat, 0.99)
	// The pollers' own heartbeats in the window are a few per cent of
	// the burst's; they are left out of the count, in the CPU.
	res.BurstCPUus = res.Burst.ConsoleCPUSec / float64(len(lat)) * 1e6
	return nil
}

// parallel runs f(0..n-1) on workers goroutines and returns the first
// error (which stops the rest).
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// waitFor polls ok every 50 ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
