package consoleload

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
)

// consoleProc is a running `ringtap-console serve`.
type consoleProc struct {
	cmd      *exec.Cmd
	stderr   *tailBuffer
	done     chan struct{} // closed when the process exited
	waitErr  error
	agentURL string
	adminURL string
	// metricsURL is the console's /metrics (--metrics-listen).
	metricsURL string
	token      string
	caPrint    string
	admin      *http.Client
	dataDir    string
	stopOnce   sync.Once
	stopError  error
}

// startConsole runs `ringtap-console init` and `serve` for dbURL ("":
// SQLite in dataDir) and returns once both listeners are up.
func startConsole(ctx context.Context, bin, dataDir, dbURL string, adminConns int) (*consoleProc, error) {
	initArgs := []string{"init", "--data", dataDir, "--json"}
	serveArgs := []string{"serve", "--data", dataDir, "--agent-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0", "--hosts", "127.0.0.1", "--log-level", "warn"}
	if dbURL != "" {
		initArgs = append(initArgs, "--db", dbURL)
		serveArgs = append(serveArgs, "--db", dbURL)
	}
	out, err := exec.CommandContext(ctx, bin, initArgs...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("ringtap-console init: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("ringtap-console init: %w", err)
	}
	var ir struct {
		AdminToken    string `json:"admin_token"`
		CAFingerprint string `json:"ca_fingerprint"`
	}
	if err := json.Unmarshal(out, &ir); err != nil || ir.AdminToken == "" {
		return nil, fmt.Errorf("ringtap-console init --json printed %q", out)
	}
	ca, err := pki.Load(dataDir)
	if err != nil {
		return nil, err
	}
	c := &consoleProc{
		cmd: exec.Command(bin, serveArgs...), stderr: &tailBuffer{max: 64 << 10}, done: make(chan struct{}),
		token: ir.AdminToken, caPrint: ir.CAFingerprint, dataDir: dataDir,
	}
	c.cmd.Stderr = c.stderr
	// The console goes with this process, also when it is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ringtap-console serve: %w", err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() { c.waitErr = c.cmd.Wait(); close(c.done) }()
	timeout := time.After(time.Minute)
	for c.agentURL == "" || c.adminURL == "" || c.metricsURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				<-c.done
				return nil, fmt.Errorf("ringtap-console serve exited before serving: %v\n%s", c.waitErr, c.stderr)
			}
			// "agent API  ADDR (agents enroll with --console URL)",
			// "admin API  URL", "metrics    URL".
			f := strings.Fields(l)
			switch {
			case len(f) == 2 && f[0] == "metrics":
				c.metricsURL = f[1]
			case len(f) >= 3 && f[0] == "agent":
				c.agentURL = strings.TrimSuffix(f[len(f)-1], ")")
			case len(f) >= 3 && f[0] == "admin":
				c.adminURL = f[2]
			}
		case <-timeout:
			c.kill()
			return nil, fmt.Errorf("ringtap-console serve printed no addresses within a minute\n%s", c.stderr)
		case <-ctx.Done():
			c.kill()
			return nil, ctx.Err()
		}
	}
	go func() {
		for range lines {
		}
	}()
	c.admin = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: adminConns,
	}}
	return c, nil
}

// pid is the console's process id.
func (c *consoleProc) pid() int { return c.cmd.Process.Pid }

// exited reports an exit before stop, with the console's last words.
func (c *consoleProc) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("ringtap-console serve exited: %v\n%s", c.waitErr, c.stderr)
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 30 s).
func (c *consoleProc) stop() error {
	c.stopOnce.Do(func() {
		if err := c.exited(); err != nil {
			c.stopError = err
			return
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
			if c.waitErr != nil {
				c.stopError = fmt.Errorf("ringtap-console serve: %w\n%s", c.waitErr, c.stderr)
			}
		case <-time.After(30 * time.Second):
			c.kill()
			c.stopError = fmt.Errorf("ringtap-console serve did not stop within 30 s of SIGTERM\n%s", c.stderr)
		}
		if c.admin != nil {
			c.admin.CloseIdleConnections()
		}
	})
	return c.stopError
}

func (c *consoleProc) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// do sends an admin API request with a JSON body (nil: none) and decodes
// a JSON answer into out (nil: discarded). It returns the status code;
// an answer other than want is an error naming the console's message.
func (c *consoleProc) do(ctx context.Context, method, path string, header http.Header, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.adminURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: answer %q: %w", method, path, raw, err)
		}
	}
	return nil
}

// installKey creates an install key through the admin API.
func (c *consoleProc) installKey(ctx context.Context) (string, error) {
	var k struct {
		Key string `json:"key"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/install-keys", nil, map[string]string{"expires_in": "1h"}, &k, http.StatusCreated); err != nil {
		return "", err
	}
	return k.Key, nil
}

// dbSize is the size of the console's SQLite files (database and WAL).
func (c *consoleProc) dbSize() int64 {
	var n int64
	matches, _ := filepath.Glob(filepath.Join(c.dataDir, "*.db*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// scrape gets the console's /metrics and returns its samples, "name{labels}"
// → value, and how long the scrape took.
func (c *consoleProc) scrape(ctx context.Context) (map[string]float64, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metricsURL, nil)
	if err != nil {
		return nil, 0, err
	}
	t := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", c.metricsURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	took := time.Since(t)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %d %v", c.metricsURL, resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		i := strings.LastIndexByte(l, ' ')
		if l == "" || l[0] == '#' || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: sample %q: %w", c.metricsURL, l, err)
		}
		out[l[:i]] = v
	}
	return out, took, nil
}
