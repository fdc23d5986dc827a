package export

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	minio "github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
)

// TestUpload uploads small files, a file of exactly one part and
// multipart files (40 MiB in 5 MiB parts, one and four at a time) and
// checks each object's key, content (downloaded), checksum, metadata and
// that it arrived once with nothing left pending.
func TestUpload(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	c := srv.Client(t)
	const mib = 1 << 20
	tests := []struct {
		name        string
		size        int64
		partSize    int64
		concurrency int
	}{
		{name: "empty", size: 0},
		{name: "small", size: 1000},
		{name: "one part exactly", size: 5 * mib, partSize: 5 * mib},
		{name: "multipart 40MiB 5MiB parts", size: 40 * mib, partSize: 5 * mib},
		{name: "multipart 40MiB 5MiB parts 4 at a time", size: 40*mib + 123, partSize: 5 * mib, concurrency: 4},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, srv)
			cfg.PartSize, cfg.Concurrency = tt.partSize, tt.concurrency
			cfg.Prefix = "upload/" + string(rune('a'+i)) + "/"
			x := mustNew(t, cfg)
			f := mustFile(t, t.TempDir(), "web-000001.pcapng", tt.size, uint64(i))
			if err := x.Enqueue(f.FinishedFile); err != nil {
				t.Fatal(err)
			}
			if !x.Pending(f.Path) {
				t.Error("Pending after Enqueue = false")
			}
			mustDrain(t, x)

			key := mustKey(t, cfg, f.FinishedFile)
			wantKey := cfg.Prefix + "sensor1/web/2026/12/01/web-000001.pcapng"
			if key != wantKey {
				t.Errorf("key = %q, want %q", key, wantKey)
			}
			if got := mustObjectSum(t, c, key, minio.GetObjectOptions{}); got != f.sum {
				t.Errorf("content sha256 = %s, want %s", got, f.sum)
			}
			info, err := c.StatObject(t.Context(), testBucket, key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{
				"Ringtap-Host": "sensor1", "Ringtap-Capture": "web", "Ringtap-Interfaces": "eth0",
				"Ringtap-Seq":     strconv.FormatUint(f.Seq, 10),
				"Ringtap-Packets": strconv.FormatUint(f.Packets, 10), "Ringtap-Start": "2026-12-01T10:28:00Z",
				"Ringtap-First": "2026-12-01T10:28:01Z", "Ringtap-Last": "2026-12-01T10:29:00Z",
				"Ringtap-Format": "pcapng",
			}, map[string]string(info.UserMetadata)); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if info.ContentType != "application/x-pcapng" {
				t.Errorf("content type = %q", info.ContentType)
			}
			if x.Pending(f.Path) {
				t.Error("Pending after upload = true")
			}
			want := Stats{Enqueued: 1, Uploads: 1, UploadBytes: uint64(tt.size)}
			if diff := cmp.Diff(want, x.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]int{key: 1}, mustVersions(t, c, cfg.Prefix)); diff != "" {
				t.Errorf("versions (-want +got):\n%s", diff)
			}
			if got := mustIncomplete(t, c); len(got) != 0 {
				t.Errorf("incomplete uploads left: %v", got)
			}
		})
	}
}
