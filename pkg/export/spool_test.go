package export

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/ringtap/ringtap/pkg/storage"
)

func TestSpool(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	entries := []entry{
		{Version: entryVersion, Key: "k/b", Path: "/d/b", Size: 2, PartSize: MinPartSize, Enqueued: t0.Add(time.Second)},
		{Version: entryVersion, Key: "k/a", Path: "/d/a", Size: 1, PartSize: MinPartSize, Enqueued: t0, Meta: map[string]string{"m": "v"}},
		{Version: entryVersion, Key: "k/c", Path: "/d/c", Size: 3, PartSize: MinPartSize, Enqueued: t0.Add(time.Second)},
	}
	for _, e := range entries {
		if err := s.put(entryID(e.Key), e); err != nil {
			t.Fatal(err)
		}
	}
	// What a crash leaves: a torn temporary file, an entry that does not
	// parse, an entry under another key's name.
	mustWrite(t, filepath.Join(dir, "."+entryID("k/x")+".123.tmp"), []byte(`{"version":1,"ke`))
	mustWrite(t, filepath.Join(dir, entryID("k/y")+".json"), []byte(`garbage`))
	mustWrite(t, filepath.Join(dir, entryID("k/z")+".json"), []byte(`{"version":1,"key":"k/a","path":"/d/a","part_size":5242880}`))

	if _, err := openSpool(dir); !errors.Is(err, ErrSpoolLocked) {
		t.Errorf("second openSpool: %v, want ErrSpoolLocked", err)
	}

	got, err := s.load(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, le := range got {
		keys = append(keys, le.e.Key)
	}
	if diff := cmp.Diff([]string{"k/a", "k/b", "k/c"}, keys); diff != "" {
		t.Errorf("loaded keys, oldest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(entries[1], got[0].e); diff != "" {
		t.Errorf("entry (-want +got):\n%s", diff)
	}
	names := mustNames(t, dir)
	want := []string{".lock", entryID("k/a") + ".json", entryID("k/b") + ".json", entryID("k/c") + ".json",
		entryID("k/y") + ".json.bad", entryID("k/z") + ".json.bad"}
	if diff := cmp.Diff(slices.Sorted(slices.Values(want)), names); diff != "" {
		t.Errorf("spool files after load (-want +got):\n%s", diff)
	}

	if err := s.remove(entryID("k/b")); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(entryID("k/b")); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s2, err := openSpool(dir)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	defer s2.close()
	got, _ = s2.load(slog.New(slog.DiscardHandler))
	if len(got) != 2 {
		t.Errorf("after remove: %d entries, want 2", len(got))
	}
}

// offlineConfig points at a port where nothing listens: New sees an
// outage and starts anyway.
func offlineConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := ParseURL("s3://captures/p/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = "http://127.0.0.1:1"
	cfg.AccessKeyID, cfg.SecretAccessKey = "k", "s"
	cfg.Host = "sensor1"
	cfg.Spool = filepath.Join(t.TempDir(), "spool")
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// TestLifecycle covers Enqueue, Pending, Drain, Run and Close while the
// store is away.
func TestLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // Run's goroutines end with it
	cfg := offlineConfig(t)
	cfg.KeyTemplate = "{seq}"
	x := mustNew(t, cfg)
	dir := t.TempDir()
	a := mustFile(t, dir, "a.pcapng", 100, 1)
	b := mustFile(t, dir, "b.pcapng", 200, 2)
	sameKey := mustFile(t, dir, "c.pcapng", 300, 1)

	if err := x.Enqueue(a.FinishedFile); err != nil {
		t.Fatal(err)
	}
	if err := x.Enqueue(a.FinishedFile); err != nil {
		t.Errorf("Enqueue again: %v", err)
	}
	rel, _ := filepath.Rel(mustCwd(t), b.Path)
	relFile := b.FinishedFile
	relFile.Path = rel
	if err := x.Enqueue(relFile); err != nil {
		t.Fatal(err)
	}
	if err := x.Enqueue(sameKey.FinishedFile); !errors.Is(err, ErrKeyConflict) {
		t.Errorf("Enqueue of another file with the same key: %v, want ErrKeyConflict", err)
	}
	if err := x.Enqueue(storage.FinishedFile{Path: filepath.Join(dir, "none")}); err == nil {
		t.Error("Enqueue of a missing file succeeded")
	}
	for _, p := range []string{a.Path, b.Path, rel} {
		if !x.Pending(p) {
			t.Errorf("Pending(%s) = false", p)
		}
	}
	if x.Pending(sameKey.Path) {
		t.Error("Pending of a refused file")
	}
	if got := len(mustReadSpool(t, cfg.Spool)); got != 2 {
		t.Errorf("%d spool entries, want 2", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	n, err := x.Drain(ctx)
	cancel()
	if n != 2 || err == nil {
		t.Errorf("Drain with the store away = %d, %v; want 2 and an error", n, err)
	}
	st := x.Stats()
	if st.Enqueued != 2 || st.SpoolFiles != 2 || st.SpoolBytes != 300 || st.Uploads != 0 || st.UploadFailures == 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Retries == 0 || st.Retries > st.UploadFailures {
		t.Errorf("retries %d, failures %d: want a retry after every failure but the last", st.Retries, st.UploadFailures)
	}

	ctx, cancel = context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := x.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "Run to start", func() bool { x.mu.Lock(); defer x.mu.Unlock(); return x.running })
	if err := x.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	if _, err := New(cfg); !errors.Is(err, ErrSpoolLocked) {
		t.Errorf("second exporter on the spool: %v, want ErrSpoolLocked", err)
	}
	// Close stops Run without its context.
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	cancel()
	if err := x.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := x.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	if n, err := x.Drain(context.Background()); n != 2 || !errors.Is(err, ErrClosed) {
		t.Errorf("Drain after Close = %d, %v", n, err)
	}
	if got := len(mustReadSpool(t, cfg.Spool)); got != 2 {
		t.Errorf("%d spool entries after Close, want 2", got)
	}
}

func mustNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func mustCwd(t *testing.T) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
