//go:build unix

package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	minio "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// Module and Version are what Start installs when minio is missing; CI's
// `make deps` installs the same.
const (
	Module  = "github.com/minio/minio"
	Version = "v0.0.0-20260212201848-7aac2a2c5b7c"
)

// KMSKeyName is the static KMS key every server has, for SSE-KMS tests.
const KMSKeyName = "ringtap-test"

// Credentials of the root user.
const (
	User     = "ringtap-root"
	Password = "ringtap-root-secret"
)

const readyTimeout = 60 * time.Second

// Options change how a server runs.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 signed by a CA
	// made for the server (Server.CAFile).
	TLS bool
	// Tmpfs keeps the data in /dev/shm, so that a benchmark measures the
	// client rather than the disk's fsync.
	Tmpfs bool
}

// Server is one running (or killed) MinIO.
type Server struct {
	t        testing.TB
	bin      string
	dataDir  string
	certsDir string
	home     string
	logPath  string
	addr     string
	console  string
	kmsKey   string

	// Endpoint is http://127.0.0.1:PORT (https with Options.TLS).
	Endpoint string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate (Options.TLS only).
	CAFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start runs a MinIO server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	root := t.TempDir()
	s := &Server{
		t:        t,
		bin:      bin,
		dataDir:  filepath.Join(root, "data"),
		certsDir: filepath.Join(root, "certs"),
		home:     filepath.Join(root, "home"),
		logPath:  filepath.Join(root, "minio.log"),
		addr:     freeAddr(t),
		console:  freeAddr(t),
		kmsKey:   KMSKeyName + ":" + base64.StdEncoding.EncodeToString(randBytes(t, 32)),
	}
	if opts.Tmpfs {
		d, err := os.MkdirTemp("/dev/shm", "ringtap-minio-")
		if err != nil {
			testbedtest.SkipOrFail(t, "no tmpfs for the data: %v", err)
		}
		s.dataDir = d
		t.Cleanup(func() { os.RemoveAll(d) }) // after the Kill below
	}
	for _, d := range []string{s.dataDir, s.certsDir, s.home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	scheme := "http"
	if opts.TLS {
		scheme = "https"
		s.CAFile = mustServerCert(t, root, s.certsDir)
	}
	s.Endpoint = scheme + "://" + s.addr
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			if log, err := os.ReadFile(s.logPath); err == nil && len(log) > 0 {
				t.Logf("minio log:\n%s", tail(log, 4000))
			}
		}
	})
	s.start()
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

func (s *Server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server", s.dataDir,
		"--address", s.addr, "--console-address", s.console,
		"--certs-dir", s.certsDir, "--quiet", "--anonymous")
	// A clean environment: nothing from the host's MINIO_* or AWS_*.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.home,
		"MINIO_ROOT_USER=" + User,
		"MINIO_ROOT_PASSWORD=" + Password,
		"MINIO_KMS_SECRET_KEY=" + s.kmsKey,
		"MINIO_UPDATE=off",            // no update checks against dl.min.io
		"MINIO_CALLHOME_ENABLE=off",   // no call-home (off by default; made sure)
		"MINIO_BROWSER=off",           // no console: nothing a test needs
		"MINIO_CI_CD=on",              // small buffer pool, test-friendly purging
		"MINIO_SCANNER_SPEED=slowest", // keep the background scanner out of the way
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start minio: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	client := s.httpClient()
	deadline := time.Now().Add(readyTimeout)
	for _, path := range []string{"/minio/health/live", "/minio/health/ready"} {
		for {
			if ok(client, s.Endpoint+path) {
				break
			}
			select {
			case <-done:
				s.Kill()
				log, _ := os.ReadFile(s.logPath)
				s.t.Fatalf("minio exited before it was ready: %v\n%s", waitErr, tail(log, 4000))
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				s.Kill()
				s.t.Fatalf("minio not ready at %s after %v", s.Endpoint, readyTimeout)
			}
		}
	}
}

// Kill sends SIGKILL to the server's process group and waits for it to
// exit. Killing a killed server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart starts a killed server again on the same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

func (s *Server) httpClient() *http.Client {
	tr := &http.Transport{Proxy: nil}
	if s.CAFile != "" {
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(s.CAFile)
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Second}
}

// Client is a root client of the server.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{
		Creds:     credentials.NewStaticV4(User, Password, ""),
		Secure:    s.CAFile != "",
		Transport: s.httpClient().Transport,
	})
	if err != nil {
		t.Fatalf("minio client: %v", err)
	}
	return c
}

// MustMakeBucket makes a bucket, with versioning if asked (so that a test
// can count the versions of an object: one per upload).
func (s *Server) MustMakeBucket(t testing.TB, name string, versioned bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client(t)
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	if versioned {
		if err := c.EnableVersioning(ctx, name); err != nil {
			t.Fatalf("enable versioning on %s: %v", name, err)
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary is the path of the minio binary, installed first if need be.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = findOrInstall() })
	if binErr != nil {
		testbedtest.SkipOrFail(t, "no minio binary: %v", binErr)
	}
	return binPath
}

// InstallCommand is what installs the binary; CI runs the same.
func InstallCommand() string { return "go install " + Module + "@" + Version }

func findOrInstall() (string, error) {
	if p := os.Getenv("RINGTAP_MINIO"); p != "" {
		if isExec(p) {
			return p, nil
		}
		return "", fmt.Errorf("RINGTAP_MINIO=%s is not an executable", p)
	}
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var dir string
	if len(lines) > 0 && lines[0] != "" {
		dir = lines[0]
	} else if len(lines) > 1 && lines[1] != "" {
		dir = filepath.Join(filepath.SplitList(lines[1])[0], "bin")
	} else {
		return "", errors.New("go env has neither GOBIN nor GOPATH")
	}
	p := filepath.Join(dir, "minio")
	if isExec(p) {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", Module+"@"+Version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", InstallCommand(), err, tail(stderr.Bytes(), 2000))
	}
	if !isExec(p) {
		return "", fmt.Errorf("%s ran but %s is not there", InstallCommand(), p)
	}
	return p, nil
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func ok(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeAddr is a free 127.0.0.1 port (free when asked; minio binds it
// right after).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
