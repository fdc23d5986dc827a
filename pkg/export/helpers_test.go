package export

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	minio "github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
	"github.com/ringtap/ringtap/pkg/storage"
)

const testBucket = "captures"

// mustServer is a MinIO with a versioned bucket (one version per upload,
// so a test can tell "arrived once" from "arrived twice with the same
// content").
func mustServer(t testing.TB, opts miniotest.Options) *miniotest.Server {
	t.Helper()
	s := miniotest.Start(t, opts)
	s.MustMakeBucket(t, testBucket, true)
	return s
}

// testConfig exports to s://captures/test/ with short backoffs.
func testConfig(t testing.TB, s *miniotest.Server) Config {
	t.Helper()
	cfg, err := ParseURL("s3://" + testBucket + "/test/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = s.Endpoint
	cfg.CAFile = s.CAFile
	cfg.AccessKeyID, cfg.SecretAccessKey = miniotest.User, miniotest.Password
	cfg.Host = "sensor1"
	cfg.Spool = filepath.Join(t.TempDir(), "spool")
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.StartTimeout = 5 * time.Second
	cfg.Logger = testLogger(t)
	return cfg
}

func mustNew(t testing.TB, cfg Config) *Exporter {
	t.Helper()
	x, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// mustDrain uploads everything or fails the test.
func mustDrain(t testing.TB, x *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if n, err := x.Drain(ctx); err != nil {
		t.Fatalf("Drain: %d remain: %v", n, err)
	}
}

// runInBackground runs x.Run until the test ends.
func runInBackground(t testing.TB, x *Exporter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := x.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// testFile is a file written by a test and the sha256 of its content.
type testFile struct {
	storage.FinishedFile
	sum string
}

var fileStart = time.Date(2026, 12, 1, 10, 28, 0, 0, time.UTC)

// mustFile writes size pseudo-random bytes (from seed) to dir/name.
func mustFile(t testing.TB, dir, name string, size int64, seed uint64) testFile {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		for i := 0; i < len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:n])
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return testFile{
		FinishedFile: storage.FinishedFile{
			Path:       path,
			Size:       size,
			Packets:    uint64(size / 100),
			First:      fileStart.Add(time.Second),
			Last:       fileStart.Add(time.Minute),
			Start:      fileStart,
			Seq:        seed,
			Interfaces: []string{"eth0"},
			Capture:    "web",
			Format:     "pcapng",
		},
		sum: hex.EncodeToString(h.Sum(nil)),
	}
}

// mustKey is f's key under cfg.
func mustKey(t testing.TB, cfg Config, f storage.FinishedFile) string {
	t.Helper()
	r, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	k, err := r.tmpl.Key(r.Prefix, r.Host, f)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustObjectSum downloads key and returns the sha256 of its content.
func mustObjectSum(t testing.TB, c *minio.Client, key string, opts minio.GetObjectOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := c.GetObject(ctx, testBucket, key, opts)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer o.Close()
	h := sha256.New()
	if _, err := io.Copy(h, o); err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mustVersions counts the versions of every object under prefix.
func mustVersions(t testing.TB, c *minio.Client, prefix string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]int{}
	for o := range c.ListObjects(ctx, testBucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatalf("list: %v", o.Err)
		}
		out[o.Key]++
	}
	return out
}

// mustIncomplete lists the incomplete multipart uploads in the bucket.
func mustIncomplete(t testing.TB, c *minio.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for u := range c.ListIncompleteUploads(ctx, testBucket, "", true) {
		if u.Err != nil {
			t.Fatalf("list incomplete uploads: %v", u.Err)
		}
		out = append(out, u.Key+" "+u.UploadID)
	}
	return out
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger logs through t.Log; after the test it is silent.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mustOpen(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
