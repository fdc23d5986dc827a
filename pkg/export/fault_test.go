package export

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	minio "github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
)

// mustArrivedOnce checks that each file is in the store with its content,
// in exactly one version (uploaded once), that nothing else is under the
// prefix and that no multipart upload is pending.
func mustArrivedOnce(t *testing.T, c *minio.Client, cfg Config, files []testFile) {
	t.Helper()
	want := map[string]int{}
	for _, f := range files {
		key := mustKey(t, cfg, f.FinishedFile)
		want[key] = 1
		if got := mustObjectSum(t, c, key, minio.GetObjectOptions{}); got != f.sum {
			t.Errorf("%s: content sha256 = %s, want %s", key, got, f.sum)
		}
	}
	if diff := cmp.Diff(want, mustVersions(t, c, cfg.Prefix)); diff != "" {
		t.Errorf("object versions (-want +got):\n%s", diff)
	}
	if got := mustIncomplete(t, c); len(got) != 0 {
		t.Errorf("incomplete multipart uploads left: %v", got)
	}
}

func mustEnqueue(t testing.TB, x *Exporter, files ...testFile) {
	t.Helper()
	for _, f := range files {
		if err := x.Enqueue(f.FinishedFile); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestart enqueues files, stops the exporter before it uploads any,
// and starts another on the same spool: every file arrives once.
func TestRestart(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	cfg := testConfig(t, srv)
	cfg.PartSize = MinPartSize
	dir := t.TempDir()
	files := []testFile{
		mustFile(t, dir, "a.pcapng", 1000, 1),
		mustFile(t, dir, "b.pcapng", 3*MinPartSize, 2),
		mustFile(t, dir, "c.pcapng", 0, 3),
	}
	x1 := mustNew(t, cfg)
	mustEnqueue(t, x1, files...)
	if err := x1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x1.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	if err := x1.Enqueue(files[0].FinishedFile); err != ErrClosed {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}

	x2 := mustNew(t, cfg)
	if got := x2.Stats(); got.SpoolFiles != 3 || got.SpoolBytes != 1000+3*MinPartSize {
		t.Errorf("reloaded spool: %d files, %d bytes", got.SpoolFiles, got.SpoolBytes)
	}
	for _, f := range files {
		if !x2.Pending(f.Path) {
			t.Errorf("%s not pending after restart", f.Path)
		}
	}
	mustDrain(t, x2)
	want := Stats{Uploads: 3, UploadBytes: 1000 + 3*MinPartSize}
	if diff := cmp.Diff(want, x2.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	mustArrivedOnce(t, srv.Client(t), cfg, files)
	mustSpoolEmpty(t, cfg.Spool)
}

// TestKillDuringMultipart SIGKILLs MinIO when 12 MiB of a 40 MiB
// multipart upload have been sent (part 3 of 8), starts it again once the
// exporter has seen the failure, and checks that every file arrives once,
// that the pending multipart upload of the killed attempt was aborted,
// and that none is left.
func TestKillDuringMultipart(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	c := srv.Client(t)
	cfg := testConfig(t, srv)
	cfg.PartSize = MinPartSize
	dir := t.TempDir()
	files := []testFile{
		mustFile(t, dir, "big.pcapng", 8*MinPartSize, 1),
		mustFile(t, dir, "small1.pcapng", 5000, 2),
		mustFile(t, dir, "small2.pcapng", MinPartSize+1, 3),
	}
	bigKey := mustKey(t, cfg, files[0].FinishedFile)
	var (
		mu     sync.Mutex
		sent   int64
		killed bool
	)
	cfg.hooks = &hooks{read: func(key string, n int) {
		mu.Lock()
		defer mu.Unlock()
		if key != bigKey || killed {
			return
		}
		if sent += int64(n); sent >= 12<<20 {
			killed = true
			srv.Kill()
		}
	}}
	x := mustNew(t, cfg)
	mustEnqueue(t, x, files...)
	runInBackground(t, x)
	waitFor(t, "a failed attempt", func() bool { return x.Stats().UploadFailures >= 1 })
	if got := x.Stats().Uploads; got != 0 {
		t.Errorf("uploads while killed = %d, want 0", got)
	}
	srv.Restart()
	mustDrain(t, x)

	st := x.Stats()
	if st.Uploads != 3 || st.AlreadyPresent != 0 || st.SpoolFiles != 0 {
		t.Errorf("uploads %d, already present %d, spool %d; want 3, 0, 0", st.Uploads, st.AlreadyPresent, st.SpoolFiles)
	}
	if st.AbortedUploads != 1 {
		t.Errorf("aborted uploads = %d, want 1 (the killed attempt's)", st.AbortedUploads)
	}
	mustArrivedOnce(t, c, cfg, files)
}

// TestOutageAtStart starts the exporter while MinIO is down: New succeeds,
// files wait in the spool (attempts fail), and once MinIO is up every
// file arrives once.
func TestOutageAtStart(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	srv.Kill()
	cfg := testConfig(t, srv)
	cfg.PartSize = MinPartSize
	x := mustNew(t, cfg)
	dir := t.TempDir()
	files := []testFile{mustFile(t, dir, "a.pcapng", 1000, 1), mustFile(t, dir, "b.pcapng", 2*MinPartSize, 2)}
	mustEnqueue(t, x, files...)
	runInBackground(t, x)
	waitFor(t, "a failed attempt", func() bool { return x.Stats().UploadFailures >= 1 })
	if st := x.Stats(); st.Uploads != 0 || st.SpoolFiles != 2 {
		t.Errorf("while down: uploads %d, spool %d; want 0, 2", st.Uploads, st.SpoolFiles)
	}
	// Files finished while the store is down simply wait too.
	late := mustFile(t, dir, "c.pcapng", 77, 3)
	mustEnqueue(t, x, late)
	files = append(files, late)

	srv.Restart()
	mustDrain(t, x)
	if got := x.Stats().Uploads; got != 3 {
		t.Errorf("uploads = %d, want 3", got)
	}
	mustArrivedOnce(t, srv.Client(t), cfg, files)
}

// TestCrashAfterConfirm puts the spool entries back after a complete
// upload, as a crash between the store's confirmation and the entry's
// removal leaves them: the next exporter finds the objects present and
// does not upload them again.
func TestCrashAfterConfirm(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	for _, mode := range []Checksum{ChecksumMD5, ChecksumCRC32C, ChecksumNone} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := testConfig(t, srv)
			cfg.Prefix = "crash/" + string(mode) + "/"
			cfg.Checksum = mode
			cfg.PartSize = MinPartSize
			dir := t.TempDir()
			files := []testFile{mustFile(t, dir, "a.pcapng", 1000, 1), mustFile(t, dir, "b.pcapng", 2*MinPartSize+1, 2)}
			x1 := mustNew(t, cfg)
			mustEnqueue(t, x1, files...)
			saved := mustReadSpool(t, cfg.Spool)
			mustDrain(t, x1)
			x1.Close()
			mustSpoolEmpty(t, cfg.Spool)
			for name, data := range saved {
				mustWrite(t, filepath.Join(cfg.Spool, name), data)
			}

			x2 := mustNew(t, cfg)
			mustDrain(t, x2)
			want := Stats{AlreadyPresent: 2}
			if diff := cmp.Diff(want, x2.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			mustArrivedOnce(t, srv.Client(t), cfg, files)
		})
	}
}

// TestDeleteAfterUpload: the local file and its sidecar stay while the
// upload waits (store down) and go once the store confirmed it; without
// the option they stay. Pending follows the spool.
func TestDeleteAfterUpload(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	tests := []struct {
		name       string
		del, named bool
	}{
		{name: "delete", del: true},
		{name: "delete, sidecar named by the recorder", del: true, named: true},
		{name: "keep"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del := tt.del
			cfg := testConfig(t, srv)
			cfg.Prefix = fmt.Sprintf("delete/%d/", i)
			cfg.DeleteAfterUpload = del
			x := mustNew(t, cfg)
			f := mustFile(t, t.TempDir(), "a.pcapng", 1000, 1)
			sidecar := f.Path + ".json"
			if tt.named {
				sidecar = filepath.Join(filepath.Dir(f.Path), ".meta-a.json")
				f.Sidecar = sidecar
			}
			mustWrite(t, sidecar, []byte("{}\n"))
			srv.Kill()
			mustEnqueue(t, x, f)
			runInBackground(t, x)
			waitFor(t, "a failed attempt", func() bool { return x.Stats().UploadFailures >= 1 })
			if !x.Pending(f.Path) {
				t.Error("Pending while the store is down = false")
			}
			mustExist(t, true, f.Path, sidecar)
			srv.Restart()
			mustDrain(t, x)
			if x.Pending(f.Path) {
				t.Error("Pending after upload = true")
			}
			mustExist(t, !del, f.Path, sidecar)
			mustArrivedOnce(t, srv.Client(t), cfg, []testFile{f})
		})
	}
}

// TestVanished drops the entry of a file that is gone, counting it,
// whether it vanished while pending or before a restart.
func TestVanished(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	cfg := testConfig(t, srv)
	dir := t.TempDir()
	a, b, c := mustFile(t, dir, "a.pcapng", 10, 1), mustFile(t, dir, "b.pcapng", 10, 2), mustFile(t, dir, "c.pcapng", 10, 3)
	x1 := mustNew(t, cfg)
	mustEnqueue(t, x1, a, b, c)
	x1.Close()
	os.Remove(a.Path) // before the restart

	x2 := mustNew(t, cfg)
	os.Remove(b.Path) // while pending
	mustDrain(t, x2)
	want := Stats{Uploads: 1, UploadBytes: 10, FilesLost: 2}
	if diff := cmp.Diff(want, x2.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	mustArrivedOnce(t, srv.Client(t), cfg, []testFile{c})
	mustSpoolEmpty(t, cfg.Spool)
}

func mustExist(t *testing.T, want bool, paths ...string) {
	t.Helper()
	for _, p := range paths {
		_, err := os.Stat(p)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", p, got, want)
		}
	}
}

func mustReadSpool(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+entrySuffix))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range m {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = data
	}
	return out
}

func mustSpoolEmpty(t *testing.T, dir string) {
	t.Helper()
	if got := mustReadSpool(t, dir); len(got) != 0 {
		t.Errorf("spool entries left: %d", len(got))
	}
}
