//go:build unix

package jobrunner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	minio "github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/export/miniotest"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// TestS3Destination: a run whose job sends its result to S3 is uploaded
// through pkg/export with the agent's export section (endpoint,
// credentials from the environment) and the job's bucket and prefix;
// the run ends once the store has the object, and its spool and
// directory are removed. The run is one a restart left uploading, so
// that no capture is involved.
func TestS3Destination(t *testing.T) {
	s := miniotest.Start(t, miniotest.Options{})
	s.MustMakeBucket(t, "captures", false)
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.User)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.Password)
	t.Setenv("AWS_REGION", "us-east-1")
	spool := filepath.Join(t.TempDir(), "spool")
	exp := &config.Export{Endpoint: s.Endpoint, Addressing: export.AddressingPath, KeyTemplate: export.DefaultKeyTemplate,
		PartSize: export.DefaultPartSize, Concurrency: 1, Spool: spool, StallTimeout: time.Minute}

	data := mustPcapng(t, 9, 400)
	fc := newFakeConsole(t)
	spec := jobapi.AgentJob{ID: 4, Interfaces: []string{"veth0"}, Duration: jobapi.Duration(time.Minute), MaxBytes: 1 << 20,
		Destination: "s3://captures/jobs/"}
	fc.addJob(spec)
	claim := newClaim()
	fc.setRun(4, func(r *consoleRun) { r.claim, r.state = claim, "running" })
	jobsDir := filepath.Join(t.TempDir(), "jobs")
	d := mustRunDir(t, jobsDir, record{ID: 4, Claim: claim, Job: spec, State: stateUploading, Outcome: outcomeFinished,
		StartedAt: time.Now().Add(-time.Minute), StoppedAt: time.Now(), HasFile: true, Size: int64(len(data)), SHA256: sha(data),
		Progress: jobapi.Progress{Packets: 9, Bytes: 9 * 400, Size: uint64(len(data))}}, data)
	tr := mustRunner(t, fc, noCapture{t}, Options{Dir: jobsDir, Host: "sensor-3", Export: func() *config.Export { return exp }})
	got := waitState(t, fc, 4, "finished", 30*time.Second)
	if got.result != nil || len(got.patches) != 0 {
		t.Errorf("an S3 run uploaded %d bytes to the console", len(got.result))
	}
	mustEventually(t, 5*time.Second, "the run's directory removed", func() (bool, string) {
		_, err := os.Stat(d)
		return errors.Is(err, fs.ErrNotExist), ""
	})

	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	for o := range c.ListObjects(ctx, "captures", minio.ListObjectsOptions{Prefix: "jobs/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "jobs/sensor-3/job-4/") || !strings.HasSuffix(keys[0], "/"+CaptureFile) {
		t.Fatalf("objects %v, want one jobs/sensor-3/job-4/DATE/%s", keys, CaptureFile)
	}
	obj, err := c.GetObject(ctx, "captures", keys[0], minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	body, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, data) {
		t.Errorf("the object has %d bytes, not the file's %d", len(body), len(data))
	}
	// The run's end tells the console where the result is.
	if want := (jobapi.Result{Location: "s3://captures/" + keys[0], Size: int64(len(data)), SHA256: sha(data)}); got.delivered == nil || *got.delivered != want {
		t.Errorf("the run's end delivered %+v, want %+v", got.delivered, want)
	}
	if _, err := os.Stat(filepath.Join(spool, spoolName(4))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the run's export spool after the upload: %v, want it removed", err)
	}
	if m := metrics(tr.Runner); m["ringtap_job_upload_bytes_total"] != fmt.Sprint(len(data)) {
		t.Errorf("upload bytes metric %q, want %d", m["ringtap_job_upload_bytes_total"], len(data))
	}
}
