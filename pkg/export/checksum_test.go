package export

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	minio "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
)

// TestChecksumModes round-trips every checksum mode, for a single PUT and
// a multipart upload, also with SSE-S3 and SSE-KMS: the store accepts
// what is sent, the exporter's verification passes, and the content that
// comes back is the file.
func TestChecksumModes(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	c := srv.Client(t)
	tests := []struct {
		name       string
		checksum   Checksum
		encryption Encryption
		wantMode   Checksum
	}{
		{name: "default", wantMode: ChecksumMD5},
		{name: "none", checksum: ChecksumNone, wantMode: ChecksumNone},
		{name: "md5", checksum: ChecksumMD5, wantMode: ChecksumMD5},
		{name: "crc32c", checksum: ChecksumCRC32C, wantMode: ChecksumCRC32C},
		{name: "sha256", checksum: ChecksumSHA256, wantMode: ChecksumSHA256},
		{name: "sse-s3 default", encryption: EncryptionS3, wantMode: ChecksumMD5},
		{name: "sse-kms default", encryption: EncryptionKMS, wantMode: ChecksumCRC32C},
		{name: "sse-kms sha256", encryption: EncryptionKMS, checksum: ChecksumSHA256, wantMode: ChecksumSHA256},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, srv)
			cfg.Prefix = "checksum/" + strings.ReplaceAll(tt.name, " ", "-") + "/"
			cfg.Checksum, cfg.Encryption = tt.checksum, tt.encryption
			if tt.encryption == EncryptionKMS {
				cfg.KMSKeyID = miniotest.KMSKeyName
			}
			cfg.PartSize = MinPartSize
			x := mustNew(t, cfg)
			if x.cfg.checksum != tt.wantMode {
				t.Errorf("checksum = %s, want %s", x.cfg.checksum, tt.wantMode)
			}
			dir := t.TempDir()
			files := []testFile{
				mustFile(t, dir, "single.pcap", 100_000, uint64(10*i)),
				mustFile(t, dir, "multi.pcap", 2*MinPartSize+7, uint64(10*i+1)),
			}
			for _, f := range files {
				if err := x.Enqueue(f.FinishedFile); err != nil {
					t.Fatal(err)
				}
			}
			mustDrain(t, x)
			for _, f := range files {
				key := mustKey(t, cfg, f.FinishedFile)
				if got := mustObjectSum(t, c, key, minio.GetObjectOptions{}); got != f.sum {
					t.Errorf("%s: content sha256 = %s, want %s", key, got, f.sum)
				}
				info, err := c.StatObject(t.Context(), testBucket, key, minio.StatObjectOptions{Checksum: true})
				if err != nil {
					t.Fatal(err)
				}
				var stored string
				switch tt.wantMode {
				case ChecksumCRC32C:
					stored = info.ChecksumCRC32C
				case ChecksumSHA256:
					stored = info.ChecksumSHA256
				}
				if (stored != "") != (tt.wantMode == ChecksumCRC32C || tt.wantMode == ChecksumSHA256) {
					t.Errorf("%s: stored %s checksum %q", key, tt.wantMode, stored)
				}
				if tt.encryption != EncryptionNone && info.Metadata.Get("X-Amz-Server-Side-Encryption") == "" {
					t.Errorf("%s: not encrypted: %v", key, info.Metadata)
				}
			}
			want := Stats{Enqueued: 2, Uploads: 2, UploadBytes: uint64(files[0].Size + files[1].Size)}
			if diff := cmp.Diff(want, x.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChecksumMismatch makes the store appear to report another checksum
// after the upload (and at the next look): the exporter counts a
// mismatch, fails the attempt, uploads the object again and verifies it.
func TestChecksumMismatch(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	c := srv.Client(t)
	for _, mode := range []Checksum{ChecksumMD5, ChecksumCRC32C, ChecksumSHA256} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := testConfig(t, srv)
			cfg.Prefix = "mismatch/" + string(mode) + "/"
			cfg.Checksum = mode
			cfg.PartSize = MinPartSize
			var mu sync.Mutex
			corrupted := 0
			cfg.hooks = &hooks{observe: func(key string, o *observed) {
				mu.Lock()
				defer mu.Unlock()
				if corrupted < 2 { // the verification, then the next look before uploading again
					corrupted++
					o.ETag, o.Checksum = "00000000000000000000000000000000", "AAAAAA=="
				}
			}}
			x := mustNew(t, cfg)
			f := mustFile(t, t.TempDir(), "f.pcapng", 2*MinPartSize, 7)
			if err := x.Enqueue(f.FinishedFile); err != nil {
				t.Fatal(err)
			}
			mustDrain(t, x)
			key := mustKey(t, cfg, f.FinishedFile)
			if got := mustObjectSum(t, c, key, minio.GetObjectOptions{}); got != f.sum {
				t.Errorf("content sha256 = %s, want %s", got, f.sum)
			}
			want := Stats{Enqueued: 1, Uploads: 1, UploadBytes: uint64(f.Size), UploadFailures: 1, Retries: 1, ChecksumMismatches: 1}
			if diff := cmp.Diff(want, x.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			// Uploaded twice: the mismatching object was replaced.
			if diff := cmp.Diff(map[string]int{key: 2}, mustVersions(t, c, cfg.Prefix)); diff != "" {
				t.Errorf("versions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTLS exports over HTTPS to a server whose certificate is signed by
// the CA file, with SSE-C (which needs HTTPS), and refuses a CA file that
// did not sign the server's certificate.
func TestTLS(t *testing.T) {
	srv := mustServer(t, miniotest.Options{TLS: true})
	c := srv.Client(t)

	t.Run("trusted CA and SSE-C", func(t *testing.T) {
		cfg := testConfig(t, srv)
		keyFile := t.TempDir() + "/ssec.key"
		key := []byte("0123456789abcdef0123456789abcdef")
		mustWrite(t, keyFile, key)
		cfg.Encryption, cfg.SSECKeyFile = EncryptionC, keyFile
		cfg.PartSize = MinPartSize
		x := mustNew(t, cfg)
		dir := t.TempDir()
		files := []testFile{mustFile(t, dir, "a.pcapng", 4000, 1), mustFile(t, dir, "b.pcapng", MinPartSize+1, 2)}
		for _, f := range files {
			if err := x.Enqueue(f.FinishedFile); err != nil {
				t.Fatal(err)
			}
		}
		mustDrain(t, x)
		sse, err := encrypt.NewSSEC(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			k := mustKey(t, cfg, f.FinishedFile)
			if got := mustObjectSum(t, c, k, minio.GetObjectOptions{ServerSideEncryption: sse}); got != f.sum {
				t.Errorf("%s: content sha256 = %s, want %s", k, got, f.sum)
			}
		}
		if got := x.Stats().Uploads; got != 2 {
			t.Errorf("uploads = %d, want 2", got)
		}
	})
}

func mustWrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := writeFile(path, data); err != nil {
		t.Fatal(err)
	}
}
