package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/signals"
	"github.com/ringtap/ringtap/pkg/storage"
)

const jobUsage = `usage: ringtap-console job <command> [flags]

Capture jobs through the admin API, from a terminal.

commands:
  run      capture on one device now, following the live stream into a file or a pipe
  list     list the jobs, newest first
  show     show a job and its runs
  cancel   cancel a job

Every command reaches the admin API with --console https://HOST:8444,
--token TOKEN and --ca-fingerprint sha256:... as ` + "`ringtap-console init`" + `
printed them, or the environment variables RINGTAP_CONSOLE, RINGTAP_TOKEN
and RINGTAP_CA_FINGERPRINT (flags win). The console's certificate is
trusted only when its CA has that fingerprint.

Run 'ringtap-console job <command> -h' for the flags of a command.
`

const jobRunUsage = `usage: ringtap-console job run --device D --interface I [flags] [EXPRESSION...]

Creates a capture job on device D (its id or hostname) with the filter
EXPRESSION (tcpdump syntax; none captures every frame), writes its live
stream to -w as the device captures, and prints the run's state, packets,
bytes and drops to standard error every second. Flags go before the
expression.

-w FILE gets the live stream as it comes; once the run has finished, FILE
is replaced by the run's complete result from the console (a live stream
loses packets when the connection cannot keep up, and says how many in its
interface statistics). -w - writes the live stream to standard output, for
a pipe into ` + "`tshark -i -`" + ` or ` + "`wireshark -k -i -`" + `.

The first Ctrl-C cancels the job and waits for the run to end (the device
stops, uploads what it captured and says so); a second quits at once.

Exit status: 0 when the run finished, 1 when it failed, was canceled or
expired (the reason is printed) or the console could not be used, 2 on bad
usage.

`

// Environment variables of the admin API's address and credentials.
const (
	envConsole     = "RINGTAP_CONSOLE"
	envToken       = "RINGTAP_TOKEN"
	envFingerprint = "RINGTAP_CA_FINGERPRINT"
)

// Timing of job run.
const (
	progressEvery = time.Second
	// liveGrace is how long job run waits for the live stream to end
	// after the run did.
	liveGrace = 10 * time.Second
	// consoleLost is how long job run keeps trying a console it cannot
	// reach before it gives up (the job goes on).
	consoleLost = 2 * time.Minute
	// requestTimeout bounds each JSON request.
	requestTimeout = 30 * time.Second
)

func runJob(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, jobUsage)
		return fmt.Errorf("%w: no job command given: run, list, show or cancel", errUsage)
	}
	switch args[0] {
	case "run":
		return runJobRun(args[1:], stdout, stderr)
	case "list":
		return runJobList(args[1:], stdout, stderr)
	case "show":
		return runJobShow(args[1:], stdout, stderr)
	case "cancel":
		return runJobCancel(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, jobUsage)
		return nil
	}
	fmt.Fprint(stderr, jobUsage)
	return fmt.Errorf("%w: unknown job command %q: run, list, show or cancel", errUsage, args[0])
}

// adminFlags are the flags that reach the admin API.
type adminFlags struct {
	console, token, fingerprint *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		console:     fs.String("console", "", "the console's admin API `URL`, https://HOST:8444 (default $"+envConsole+")"),
		token:       fs.String("token", "", "the admin `TOKEN` that ringtap-console init printed (default $"+envToken+")"),
		fingerprint: fs.String("ca-fingerprint", "", "the console CA's `SHA256` fingerprint, sha256:... as ringtap-console init printed it (default $"+envFingerprint+")"),
	}
}

// orEnv is the flag's value, else the environment variable's.
func orEnv(flagValue, env string) string {
	if v := strings.TrimSpace(flagValue); v != "" {
		return v
	}
	return strings.TrimSpace(os.Getenv(env))
}

// adminTarget is the checked value of the adminFlags.
type adminTarget struct {
	base  *url.URL
	token string
	pin   string
}

// check checks the flags (usage errors).
func (f adminFlags) check() (adminTarget, error) {
	var t adminTarget
	raw := orEnv(*f.console, envConsole)
	if raw == "" {
		return t, fmt.Errorf("%w: --console is required: give the admin API's URL, such as https://console.example:8444 (or set %s)", errUsage, envConsole)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return t, fmt.Errorf("%w: --console %q is not an https URL: give the admin API's, such as https://console.example:8444", errUsage, raw)
	}
	u.Path, u.RawPath = strings.TrimSuffix(u.Path, "/"), ""
	t.base = u
	t.token = orEnv(*f.token, envToken)
	switch {
	case t.token == "":
		return t, fmt.Errorf("%w: --token is required: give the admin token `ringtap-console init` printed (or set %s)", errUsage, envToken)
	case !pki.ValidAdminToken(t.token):
		return t, fmt.Errorf("%w: --token is not an admin token: it starts with rta_, as `ringtap-console init` printed it", errUsage)
	}
	fp := orEnv(*f.fingerprint, envFingerprint)
	if fp == "" {
		return t, fmt.Errorf("%w: --ca-fingerprint is required: give the sha256:... fingerprint `ringtap-console init` printed (or set %s)", errUsage, envFingerprint)
	}
	if t.pin, err = pki.NormalizeFingerprint(fp); err != nil {
		return t, fmt.Errorf("%w: --ca-fingerprint: %w", errUsage, err)
	}
	return t, nil
}

// adminClient talks to the admin API, trusting only the pinned CA.
type adminClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// dial returns a client that trusts the console's CA alone, pinned by
// its fingerprint the way agents pin it when they enroll.
func dial(ctx context.Context, t adminTarget) (*adminClient, error) {
	cfg, err := certmgr.PinnedTLSConfig(ctx, t.base, t.pin)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.base.Redacted(), err)
	}
	return &adminClient{base: t.base, token: t.token, hc: &http.Client{Transport: &http.Transport{
		TLSClientConfig:     cfg,
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 15 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}}}, nil
}

// apiError is a non-2xx answer of the admin API.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

// statusOf is the HTTP status of an apiError, else 0.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// request sends a request to the admin API with the token; the caller
// closes the answer's body. A non-2xx answer is an *apiError.
func (c *adminClient) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if msg == "" {
			msg = resp.Status
		}
		return nil, &apiError{Status: resp.StatusCode, Msg: msg}
	}
	return resp, nil
}

// do sends a JSON request and decodes the JSON answer into out (unless
// nil).
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what a console sends: %w", method, path, err)
	}
	return nil
}

// deviceInfo is a device of GET /api/v1/devices.
type deviceInfo struct {
	ID         string   `json:"id"`
	Hostname   string   `json:"hostname"`
	State      string   `json:"state"`
	Interfaces []string `json:"interfaces"`
}

// resolveDevice finds the device arg names: its id, else its hostname
// among the devices that are not revoked.
func (c *adminClient) resolveDevice(ctx context.Context, arg string) (deviceInfo, error) {
	var l struct {
		Devices []deviceInfo `json:"devices"`
	}
	if err := c.do(ctx, "GET", "/api/v1/devices", nil, &l); err != nil {
		return deviceInfo{}, fmt.Errorf("list the devices: %w", err)
	}
	for _, d := range l.Devices {
		if d.ID == arg {
			return d, nil
		}
	}
	var named []deviceInfo
	for _, d := range l.Devices {
		if strings.EqualFold(d.Hostname, arg) && d.State != string(store.StateRevoked) {
			named = append(named, d)
		}
	}
	switch len(named) {
	case 0:
		return deviceInfo{}, fmt.Errorf("%w: --device %s: no device has that id or hostname (GET /api/v1/devices lists them)", errUsage, arg)
	case 1:
		return named[0], nil
	}
	ids := make([]string, len(named))
	for i, d := range named {
		ids[i] = d.ID
	}
	return deviceInfo{}, fmt.Errorf("%w: --device %s: %d devices have that hostname (%s): give the id of the one to capture on", errUsage, arg, len(named), strings.Join(ids, ", "))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	if v = strings.TrimSpace(v); v == "" {
		return errors.New("empty")
	}
	*l = append(*l, v)
	return nil
}

// jobRequest is the body of POST /api/v1/jobs as job run sends it.
type jobRequest struct {
	Devices    []string `json:"devices"`
	Interfaces []string `json:"interfaces"`
	Filter     string   `json:"filter"`
	SnapLen    uint32   `json:"snaplen,omitempty"`
	Duration   string   `json:"duration,omitempty"`
	MaxPackets uint64   `json:"max_packets,omitempty"`
	MaxBytes   uint64   `json:"max_bytes,omitempty"`
	ExpiresIn  string   `json:"expires_in,omitempty"`
}

func runJobRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("job run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, jobRunUsage); fs.PrintDefaults() }
	af := addAdminFlags(fs)
	device := fs.String("device", "", "the device to capture on: its id, or its hostname when only one device has it")
	var ifaces stringList
	fs.Var(&ifaces, "interface", "an interface of the device to capture on; repeat it for several")
	duration := fs.String("duration", "", "stop after this long, such as 30s or 5m (when no stop condition is given at all: the console's 60s)")
	maxPackets := fs.Uint64("max-packets", 0, "stop after this many packets (0: no limit)")
	maxBytes := fs.String("max-bytes", "", "stop when the result reaches this size, such as 100MB or 1GiB (default: the console's --job-max-bytes)")
	snaplen := fs.Uint("snaplen", 0, "bytes kept of each packet (0: the console's 262144)")
	expiresIn := fs.String("expires-in", "", "how long the job waits for the device to accept it, such as 10m (default: the console's 10m)")
	out := fs.String("w", "", "write the capture to `FILE`, or - for standard output (default job-ID-HOSTNAME.pcapng)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	for _, a := range fs.Args() {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name != "" && fs.Lookup(name) != nil {
			return fmt.Errorf("%w: %s comes after the filter expression: put the flags before it", errUsage, a)
		}
	}
	target, err := af.check()
	if err != nil {
		return err
	}
	req := jobRequest{Filter: strings.Join(fs.Args(), " "), Interfaces: ifaces, MaxPackets: *maxPackets}
	if strings.TrimSpace(*device) == "" {
		return fmt.Errorf("%w: --device is required: give the id or hostname of the device to capture on (GET /api/v1/devices lists them)", errUsage)
	}
	if *duration != "" {
		d, err := time.ParseDuration(*duration)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: --duration %q is not a duration: give one such as 30s or 5m", errUsage, *duration)
		}
		req.Duration = d.String()
	}
	if *expiresIn != "" {
		d, err := time.ParseDuration(*expiresIn)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: --expires-in %q is not a duration: give one such as 10m", errUsage, *expiresIn)
		}
		req.ExpiresIn = d.String()
	}
	if *maxBytes != "" {
		n, err := storage.ParseSize(*maxBytes)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: --max-bytes %q is not a size: give one such as 100MB or 1GiB", errUsage, *maxBytes)
		}
		req.MaxBytes = uint64(n)
	}
	if *snaplen > math.MaxUint32 {
		return fmt.Errorf("%w: --snaplen %d is too large: give at most 262144, the console's default", errUsage, *snaplen)
	}
	req.SnapLen = uint32(*snaplen)

	// The first signal cancels the job (the context ends); the second
	// quits.
	sigCtx, stopSignals := signals.TwoStepWith(context.Background(), signals.Handlers{
		Hard: func(os.Signal) {
			fmt.Fprintln(stderr, "ringtap-console: second signal: quitting; the job goes on until the console's cancel reaches it")
			os.Exit(130)
		},
	})
	defer stopSignals()

	ctx := context.Background()
	c, err := dial(sigCtx, target)
	if err != nil {
		return err
	}
	defer c.hc.CloseIdleConnections()
	dev, err := c.resolveDevice(sigCtx, strings.TrimSpace(*device))
	if err != nil {
		return err
	}
	name := dev.Hostname
	if name == "" {
		name = dev.ID
	}
	if len(req.Interfaces) == 0 {
		known := "it has reported none yet"
		if len(dev.Interfaces) > 0 {
			known = "it has " + strings.Join(dev.Interfaces, ", ")
		}
		return fmt.Errorf("%w: --interface is required: give the interfaces of %s to capture on (%s)", errUsage, name, known)
	}
	req.Devices = []string{dev.ID}
	var job console.JobView
	if err := c.do(sigCtx, "POST", "/api/v1/jobs", req, &job); err != nil {
		switch {
		case statusOf(err) == http.StatusBadRequest:
			return fmt.Errorf("%w: the console refused the job: %w", errUsage, err)
		case sigCtx.Err() != nil:
			return errors.New("interrupted while the job was created: `ringtap-console job list` shows whether it was")
		}
		return fmt.Errorf("create the job: %w", err)
	}
	if len(job.Runs) != 1 {
		return fmt.Errorf("job %d has %d runs, want the one on %s", job.ID, len(job.Runs), dev.ID)
	}

	path := *out
	if path == "" {
		path = fmt.Sprintf("job-%d-%s.pcapng", job.ID, safeName(name))
	}
	var w io.Writer = stdout
	var file *os.File
	if path != "-" {
		if file, err = os.Create(path); err != nil {
			return fmt.Errorf("job %d was created, but its output cannot be: %w (cancel it with `ringtap-console job cancel %d`)", job.ID, err, job.ID)
		}
		defer file.Close()
		w = file
	} else {
		// A reader of standard output that goes away (tshark quits) is
		// an EPIPE to handle, not a signal that kills us mid-job.
		signal.Ignore(syscall.SIGPIPE)
		defer signal.Reset(syscall.SIGPIPE)
	}
	stop := "until the first of " + stopConditions(job)
	fmt.Fprintf(stderr, "job %d: capturing on %s (%s) %s, filter %q, %s; live stream to %s\n",
		job.ID, name, dev.ID, strings.Join(job.Interfaces, ","), job.Filter, stop, displayPath(path))

	f := &follower{c: c, job: job.ID, dev: dev.ID, name: name, out: w, stderr: &syncWriter{w: stderr}}
	run, err := f.follow(ctx, sigCtx)
	if err != nil {
		return err
	}
	if file != nil && run.State == store.RunFinished && run.Result != nil && run.Result.Download != "" {
		if err := f.download(ctx, file, path, run.Result); err != nil {
			fmt.Fprintf(stderr, "job %d: %s keeps the live stream (%s): the complete result could not be downloaded: %v\n", job.ID, path, fmtSize(f.written.Load()), err)
		} else {
			fmt.Fprintf(stderr, "job %d: %s is the run's complete result (%s, sha256 %s)\n", job.ID, path, fmtSize(run.Result.Size), run.Result.SHA256)
		}
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	summary := fmt.Sprintf("%d packets, %s, %d drops", run.Packets, fmtSize(int64(run.Bytes)), run.Drops)
	if run.State == store.RunFinished {
		fmt.Fprintf(stderr, "job %d on %s: finished: %s\n", job.ID, name, summary)
		return nil
	}
	reason := run.Error
	if n := len(run.Transitions); reason == "" && n > 0 {
		reason = run.Transitions[n-1].Reason
	}
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Errorf("job %d on %s %s: %s (%s)", job.ID, name, run.State, reason, summary)
}

// stopConditions describes a job's stop conditions.
func stopConditions(j console.JobView) string {
	var s []string
	if j.Duration > 0 {
		s = append(s, time.Duration(j.Duration).String())
	}
	if j.MaxPackets > 0 {
		s = append(s, fmt.Sprintf("%d packets", j.MaxPackets))
	}
	if j.MaxBytes > 0 {
		s = append(s, fmtSize(int64(j.MaxBytes)))
	}
	return strings.Join(s, ", ")
}

func displayPath(p string) string {
	if p == "-" {
		return "standard output"
	}
	return p
}

// safeName keeps a hostname's letters, digits, dots and dashes, for a
// file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// follower follows one run: its progress, its live stream into out.
type follower struct {
	c      *adminClient
	job    int64
	dev    string
	name   string
	out    io.Writer
	stderr io.Writer

	written    atomic.Int64 // live stream bytes written to out
	outputGone chan struct{}
	outputOnce sync.Once
	cancelOnce sync.Once
	wg         sync.WaitGroup // the cancel request
}

// syncWriter serializes the writes of the follower's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// follow prints the run's progress every second and copies its live
// stream to out, until the run has ended and its stream too. The first
// signal (sigCtx) and the loss of standard output's reader cancel the
// job. It returns the run as it ended.
func (f *follower) follow(ctx, sigCtx context.Context) (console.RunView, error) {
	f.outputGone = make(chan struct{})
	defer f.wg.Wait()
	liveCtx, stopLive := context.WithCancel(ctx)
	var ended atomic.Bool
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		f.live(liveCtx, &ended)
	}()
	defer func() { stopLive(); <-liveDone }()

	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var (
		run      console.RunView
		lastGood = time.Now()
		sig      = sigCtx.Done()
		gone     = (<-chan struct{})(f.outputGone)
	)
	for {
		select {
		case <-sig:
			sig = nil
			fmt.Fprintf(f.stderr, "job %d: canceling (Ctrl-C again quits without waiting for the run to end)\n", f.job)
			f.cancel(ctx)
		case <-gone:
			gone = nil
			fmt.Fprintf(f.stderr, "job %d: the reader of the live stream went away: canceling the job\n", f.job)
			f.cancel(ctx)
		case <-tick.C:
			var j console.JobView
			err := f.c.do(ctx, "GET", fmt.Sprintf("/api/v1/jobs/%d", f.job), nil, &j)
			if err != nil {
				if st := statusOf(err); st == http.StatusNotFound || st == http.StatusUnauthorized {
					return run, fmt.Errorf("job %d: %w", f.job, err)
				}
				if time.Since(lastGood) > consoleLost {
					return run, fmt.Errorf("job %d: the console has not answered for %s (%v): the job goes on; follow it with `ringtap-console job show %d`", f.job, consoleLost, err, f.job)
				}
				fmt.Fprintf(f.stderr, "job %d: cannot read the job: %v (trying again)\n", f.job, err)
				continue
			}
			lastGood = time.Now()
			for _, r := range j.Runs {
				if r.Device == f.dev {
					run = r
				}
			}
			fmt.Fprintf(f.stderr, "job %d on %s: %s, %d packets, %s, %d drops; live stream %s\n",
				f.job, f.name, run.State, run.Packets, fmtSize(int64(run.Bytes)), run.Drops, fmtSize(f.written.Load()))
			if run.State.Terminal() {
				ended.Store(true)
				select {
				case <-liveDone:
				case <-time.After(liveGrace):
					stopLive()
					<-liveDone
				}
				return run, nil
			}
		}
	}
}

// cancel asks the console to cancel the job, once.
func (f *follower) cancel(ctx context.Context) {
	f.cancelOnce.Do(func() {
		f.wg.Go(func() {
			err := f.c.do(ctx, "POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", f.job), nil, nil)
			switch {
			case err == nil:
				fmt.Fprintf(f.stderr, "job %d: cancel requested: the device stops, uploads what it captured and ends the run\n", f.job)
			case statusOf(err) == http.StatusConflict:
				fmt.Fprintf(f.stderr, "job %d: %v\n", f.job, err)
			default:
				fmt.Fprintf(f.stderr, "job %d: cancel: %v: cancel it with `ringtap-console job cancel %d`\n", f.job, err, f.job)
			}
		})
	})
}

// live copies the run's live stream into out, connecting again when the
// stream breaks, until the run has ended (409, or ended once a stream
// ends) or ctx ends. A new connection starts a new pcapng section.
func (f *follower) live(ctx context.Context, ended *atomic.Bool) {
	path := fmt.Sprintf("/api/v1/jobs/%d/runs/%s/live", f.job, f.dev)
	ow := &countingWriter{w: f.out, n: &f.written}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			if ended.Load() {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		resp, err := f.c.request(ctx, "GET", path, nil)
		switch {
		case statusOf(err) == http.StatusConflict:
			return // the run has ended
		case statusOf(err) == http.StatusNotFound || statusOf(err) == http.StatusUnauthorized:
			fmt.Fprintf(f.stderr, "job %d: live stream: %v\n", f.job, err)
			return
		case err != nil:
			if ctx.Err() == nil {
				fmt.Fprintf(f.stderr, "job %d: live stream: %v (connecting again)\n", f.job, err)
			}
			continue
		}
		_, err = io.Copy(ow, resp.Body)
		resp.Body.Close()
		if ow.err != nil {
			fmt.Fprintf(f.stderr, "job %d: write the live stream: %v\n", f.job, ow.err)
			f.outputOnce.Do(func() { close(f.outputGone) })
			return
		}
		if err == nil && ended.Load() {
			return
		}
	}
}

// countingWriter counts what it writes, and keeps its error apart from
// the reader's.
type countingWriter struct {
	w   io.Writer
	n   *atomic.Int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	if err != nil {
		c.err = err
	}
	return n, err
}

// download replaces file (at path) with the run's complete result,
// checked against its SHA-256.
func (f *follower) download(ctx context.Context, file *os.File, path string, res *console.ResultView) error {
	resp, err := f.c.request(ctx, "GET", res.Download, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return err
	case n != res.Size || hex.EncodeToString(sum.Sum(nil)) != res.SHA256:
		return fmt.Errorf("got %d bytes with sha256 %x, the console said %d bytes with sha256 %s", n, sum.Sum(nil), res.Size, res.SHA256)
	}
	if fi, err := file.Stat(); err == nil {
		_ = os.Chmod(tmp.Name(), fi.Mode().Perm())
	}
	return os.Rename(tmp.Name(), path)
}

// fmtSize formats a byte count as 1.5 MiB.
func fmtSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// idArg parses the job id of show and cancel, with flags before or
// after it.
func idArg(fs *flag.FlagSet, args []string) (int64, error) {
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if fs.NArg() == 0 {
		return 0, fmt.Errorf("%w: no job id given: `ringtap-console job list` lists the jobs", errUsage)
	}
	raw := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return 0, err
	}
	if fs.NArg() > 0 {
		return 0, fmt.Errorf("%w: unexpected argument %q: give one job id", errUsage, fs.Arg(0))
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%w: %q is not a job id: job ids are numbers (`ringtap-console job list` lists them)", errUsage, raw)
	}
	return id, nil
}

// parseErr turns a flag package error into a usage error, nil for -h.
func parseErr(err error) error {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return nil
	case errors.Is(err, errUsage):
		return err
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}

func runJobList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("job list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: ringtap-console job list [flags]\n\nLists the jobs, newest first, with the state of each run.\n\n")
		fs.PrintDefaults()
	}
	af := addAdminFlags(fs)
	limit := fs.Int("limit", 20, "the most jobs listed")
	asJSON := fs.Bool("json", false, "print the admin API's answer")
	if err := fs.Parse(args); err != nil {
		return parseErr(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *limit < 1 {
		return fmt.Errorf("%w: --limit %d: give 1 or more", errUsage, *limit)
	}
	c, err := connect(af)
	if err != nil {
		return err
	}
	defer c.hc.CloseIdleConnections()
	var l struct {
		Jobs []console.JobView `json:"jobs"`
	}
	if err := c.do(context.Background(), "GET", "/api/v1/jobs?limit="+strconv.Itoa(*limit), nil, &l); err != nil {
		return fmt.Errorf("list the jobs: %w", err)
	}
	if *asJSON {
		return printJSON(stdout, l)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tRUNS\tFILTER")
	for _, j := range l.Jobs {
		var runs []string
		for _, r := range j.Runs {
			runs = append(runs, fmt.Sprintf("%s %s", runName(r), r.State))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", j.ID, j.CreatedAt.Local().Format(time.DateTime), j.State, strings.Join(runs, ", "), j.Filter)
	}
	return tw.Flush()
}

func runName(r console.RunView) string {
	if r.Hostname != "" {
		return r.Hostname
	}
	return r.Device
}

func runJobShow(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("job show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: ringtap-console job show ID [flags]\n\nShows a job: its spec, and each run's state, progress, transitions and result.\n\n")
		fs.PrintDefaults()
	}
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print the admin API's answer")
	id, err := idArg(fs, args)
	if err != nil {
		return parseErr(err)
	}
	c, err := connect(af)
	if err != nil {
		return err
	}
	defer c.hc.CloseIdleConnections()
	var j console.JobView
	if err := c.do(context.Background(), "GET", fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil {
		return fmt.Errorf("job %d: %w", id, err)
	}
	if *asJSON {
		return printJSON(stdout, j)
	}
	fmt.Fprintf(stdout, "job %d: %s\n", j.ID, j.State)
	fmt.Fprintf(stdout, "  created %s, expires %s", j.CreatedAt.Local().Format(time.DateTime), j.ExpiresAt.Local().Format(time.DateTime))
	if j.CancelRequestedAt != nil {
		fmt.Fprintf(stdout, ", cancel requested %s", j.CancelRequestedAt.Local().Format(time.DateTime))
	}
	fmt.Fprintf(stdout, "\n  interfaces %s, filter %q, snaplen %d, stops at the first of %s, result to %s\n",
		strings.Join(j.Interfaces, ","), j.Filter, j.SnapLen, stopConditions(j), j.Destination)
	for _, r := range j.Runs {
		fmt.Fprintf(stdout, "  %s (%s): %s, %d packets, %s, %d drops, file %s\n", runName(r), r.Device, r.State, r.Packets, fmtSize(int64(r.Bytes)), r.Drops, fmtSize(int64(r.Size)))
		if r.Error != "" {
			fmt.Fprintf(stdout, "    %s\n", r.Error)
		}
		for _, tr := range r.Transitions {
			line := fmt.Sprintf("    %s %s", tr.At.Local().Format(time.DateTime), tr.State)
			if tr.Reason != "" {
				line += ": " + tr.Reason
			}
			fmt.Fprintln(stdout, line)
		}
		switch res := r.Result; {
		case res != nil && res.Deleted != "":
			fmt.Fprintf(stdout, "    result deleted (%s, sha256 %s): %s\n", fmtSize(res.Size), res.SHA256, res.Deleted)
		case res != nil && res.Download != "":
			fmt.Fprintf(stdout, "    result %s (%s, sha256 %s)\n", res.Download, fmtSize(res.Size), res.SHA256)
		case res != nil:
			fmt.Fprintf(stdout, "    result %s (%s, sha256 %s)\n", res.Location, fmtSize(res.Size), res.SHA256)
		case !r.State.Terminal():
			fmt.Fprintf(stdout, "    live %s\n", r.Live)
		}
	}
	return nil
}

func runJobCancel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("job cancel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: ringtap-console job cancel ID [flags]\n\nCancels a job: its queued runs end at once, its devices stop the others and upload what they captured.\n\n")
		fs.PrintDefaults()
	}
	af := addAdminFlags(fs)
	id, err := idArg(fs, args)
	if err != nil {
		return parseErr(err)
	}
	c, err := connect(af)
	if err != nil {
		return err
	}
	defer c.hc.CloseIdleConnections()
	var j console.JobView
	if err := c.do(context.Background(), "POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", id), nil, &j); err != nil {
		return fmt.Errorf("cancel job %d: %w", id, err)
	}
	fmt.Fprintf(stdout, "job %d: cancel requested\n", j.ID)
	for _, r := range j.Runs {
		what := "ended"
		if !r.State.Terminal() {
			what = "stopping: the device uploads what it captured"
		}
		fmt.Fprintf(stdout, "  %s: %s (%s)\n", runName(r), r.State, what)
	}
	return nil
}

// connect checks the admin flags and dials the console.
func connect(af adminFlags) (*adminClient, error) {
	t, err := af.check()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return dial(ctx, t)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
