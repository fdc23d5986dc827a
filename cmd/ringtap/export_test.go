package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

func setS3Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.User)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.Password)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", "")
}

// TestCaptureUploadsToS3: `ringtap capture -w s3://...` with rotation
// uploads every finished file once to a real MinIO, removes the local
// copies once the store confirmed them, and the objects hold every packet
// sent.
func TestCaptureUploadsToS3(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	srv := miniotest.Start(t, miniotest.Options{})
	srv.MustMakeBucket(t, "caps", true)
	setS3Env(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	spool := filepath.Join(t.TempDir(), "spool")
	s := mustStart(t, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", "s3://caps/run1/",
		"--s3-endpoint", srv.Endpoint, "--spool", spool, "-C", "20KB", "--delete-after-upload", "udp")
	const n = 400
	if err := trafficgen.SendRaw(pair.A, udpFrames(t, pair, 0, n, 200)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}

	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dl := t.TempDir()
	var files []string
	versions := map[string]int{}
	for o := range c.ListObjects(ctx, "caps", minio.ListObjectsOptions{Prefix: "run1/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		versions[o.Key]++
		if versions[o.Key] > 1 {
			continue
		}
		p := filepath.Join(dl, filepath.Base(o.Key))
		if err := c.FGetObject(ctx, "caps", o.Key, p, minio.GetObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	if len(files) < 3 {
		t.Fatalf("%d objects, want several at 20 KB each\n%s", len(files), s.stderr)
	}
	for k, v := range versions {
		if v != 1 {
			t.Errorf("object %s uploaded %d times", k, v)
		}
	}
	if got := mustCapinfosTotal(t, files); got != n {
		t.Errorf("capinfos counts %d packets in the uploaded objects, want %d", got, n)
	}
	left, _ := filepath.Glob(filepath.Join(spool, "*.pcapng"))
	if len(left) != 0 {
		t.Errorf("local copies left after upload with --delete-after-upload: %v", left)
	}
	if !strings.Contains(s.stderr.String(), "files remain") || !strings.Contains(s.stderr.String(), " 0 files remain in "+spool) {
		t.Errorf("summary does not say that nothing remains:\n%s", s.stderr)
	}
}

// TestCaptureS3BadInput: a missing bucket, wrong credentials or export
// flags without -w s3:// are one sentence and a non-zero exit, before
// anything attaches, and no spool is created.
func TestCaptureS3BadInput(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	srv := miniotest.Start(t, miniotest.Options{})
	srv.MustMakeBucket(t, "caps", false)
	setS3Env(t)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"missing bucket", nil, []string{"-w", "s3://nosuch/p/"}, "bucket nosuch does not exist"},
		{"wrong credentials", []string{"AWS_SECRET_ACCESS_KEY=wrong"}, []string{"-w", "s3://caps/p/"}, "the store rejected the credentials"},
		{"bad url", nil, []string{"-w", "s3:///p/"}, "has no bucket"},
		{"export flag without s3", nil, []string{"-w", "x.pcapng", "--delete-after-upload"}, "--delete-after-upload is for -w s3://BUCKET/PREFIX/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := filepath.Join(t.TempDir(), "spool")
			args := append([]string{"capture", "-i", "lo", "--s3-endpoint", srv.Endpoint, "--spool", spool}, tt.args...)
			if tt.name == "export flag without s3" {
				args = []string{"capture", "-i", "lo", "-w", filepath.Join(t.TempDir(), "x.pcapng"), "--delete-after-upload"}
			}
			cmd := exec.Command(binPath, args...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want an error\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not say %q:\n%s", tt.want, out)
			}
			if strings.Contains(string(out), "listening on") {
				t.Errorf("it attached before refusing:\n%s", out)
			}
			if _, err := os.Stat(spool); !os.IsNotExist(err) {
				t.Errorf("spool %s was created (%v)", spool, err)
			}
		})
	}
}
