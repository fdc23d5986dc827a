//go:build linux

package main

// End-to-end tests of the agent's export path: `ringtap agent` with a
// capture whose output.export uploads its rotated files to a real MinIO
// (pkg/export/miniotest), observed through /metrics, the bucket, the
// output directory and the spool.

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/export/miniotest"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

const (
	exportBucket = "caps"
	exportPrefix = "agent/"
	exportFrames = 400 // of 200 bytes: 5 or so files of 20 KB
)

// agentExportBed is a MinIO with a versioned bucket (one version per
// upload), a pair of namespaces and the config of an agent in B with one
// capture, "web", rotating at 20 KB and uploading with
// delete_after_upload.
type agentExportBed struct {
	srv    *miniotest.Server
	pair   *testbed.Pair
	cfg    string
	listen string
	out    string // the capture's output directory
	spool  string // the capture's spool (export.spool/web)
}

func mustAgentExportBed(t *testing.T) *agentExportBed {
	t.Helper()
	skipInKernelMatrix(t, "the export path does not depend on the kernel, and the guests have no MinIO; the capture path is tested on every kernel by the other tests")
	testbedtest.RequirePrivileged(t)
	requireTools(t, "capinfos")
	srv := miniotest.Start(t, miniotest.Options{})
	srv.MustMakeBucket(t, exportBucket, true)
	setS3Env(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := t.TempDir()
	b := &agentExportBed{srv: srv, pair: pair, cfg: filepath.Join(dir, "agent.yaml"), listen: mustITFreePort(t),
		out: filepath.Join(dir, "web"), spool: filepath.Join(dir, "spool", "web")}
	y := itConfig{Listen: b.listen, Captures: []itCapture{
		{Name: "web", Iface: pair.B.Link, Filter: "udp", Dir: b.out, Rotate: "{size_mb: 20KB}"},
	}}.yaml()
	// itConfig has no export keys. Its one capture's output block ends the
	// captures list, so the capture's export goes right before http.
	y = strings.Replace(y, "http:\n", fmt.Sprintf("      export: {url: \"s3://%s/%s\", delete_after_upload: true}\nhttp:\n", exportBucket, exportPrefix), 1)
	y += fmt.Sprintf("export:\n  endpoint: %s\n  spool: %s\n  upload_grace: 2s\n", srv.Endpoint, filepath.Dir(b.spool))
	mustITWriteFile(t, b.cfg, y)
	return b
}

func (b *agentExportBed) mustStartAgent(t *testing.T) *itAgentRun {
	t.Helper()
	a := mustITStartAgent(t, b.cfg, b.listen, b.pair.B.NSPath, true)
	a.mustWaitState(t, agent.CaptureRunning, "web")
	return a
}

// exportSeries are the agent's series for the capture: its file and
// packet counters and its exporter's.
type exportSeries map[string]float64

func (s exportSeries) capture(name string, b *agentExportBed) float64 {
	return s[fmt.Sprintf("%s{capture=\"web\",interface=%q}", name, b.pair.B.Link)]
}

func (s exportSeries) export(name string) float64 { return s[name+`{capture="web"}`] }

func (s exportSeries) String() string {
	var out []string
	for k, v := range s {
		if strings.Contains(k, `capture="web"`) {
			out = append(out, fmt.Sprintf("%s %g", k, v))
		}
	}
	return strings.Join(out, ", ")
}

// mustScrape reads the agent's /metrics: "name{labels}" → value.
func mustScrape(t *testing.T, a *itAgentRun) exportSeries {
	t.Helper()
	code, body, err := a.get("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v\n%s", code, err, body)
	}
	out := exportSeries{}
	for l := range strings.SplitSeq(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

// bucketObject is one object of the bucket, downloaded.
type bucketObject struct {
	key, path string
	size      int64
}

// mustBucketObjects downloads every object of the bucket's prefix and
// fails the test for an object uploaded more than once (more than one
// version).
func (b *agentExportBed) mustBucketObjects(t *testing.T) []bucketObject {
	t.Helper()
	c := b.srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dl := t.TempDir()
	var out []bucketObject
	versions := map[string]int{}
	for o := range c.ListObjects(ctx, exportBucket, minio.ListObjectsOptions{Prefix: exportPrefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if versions[o.Key]++; versions[o.Key] > 1 {
			t.Errorf("object %s uploaded %d times", o.Key, versions[o.Key])
			continue
		}
		p := filepath.Join(dl, fmt.Sprintf("%03d-%s", len(out), filepath.Base(o.Key)))
		if err := c.FGetObject(ctx, exportBucket, o.Key, p, minio.GetObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		out = append(out, bucketObject{key: o.Key, path: p, size: o.Size})
	}
	return out
}

func objectPaths(objs []bucketObject) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.path)
	}
	return out
}

// mustNoLocalFiles checks that the output directory holds no capture file
// or sidecar and the spool no entry: every file was uploaded and removed.
func (b *agentExportBed) mustNoLocalFiles(t *testing.T) {
	t.Helper()
	if left := itFinishedFiles(t, b.out); len(left) != 0 {
		t.Errorf("files left in the output directory with delete_after_upload: %v", left)
	}
	if side, _ := filepath.Glob(filepath.Join(b.out, "*.json")); len(side) != 0 {
		t.Errorf("sidecars left in the output directory: %v", side)
	}
	if entries := b.spoolEntries(t); len(entries) != 0 {
		t.Errorf("spool entries left: %v", entries)
	}
}

func (b *agentExportBed) spoolEntries(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(b.spool, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAgentExportsToS3: an agent capture with output.export uploads each
// rotated file once, as it is finished, and the last one at SIGTERM; the
// objects hold every packet sent, as many as the agent counted; the
// export counters agree with the bucket; delete_after_upload leaves
// nothing behind, in the output directory or the spool.
func TestAgentExportsToS3(t *testing.T) {
	b := mustAgentExportBed(t)
	a := b.mustStartAgent(t)
	mustITSend(t, b.pair.A, udpFrames(t, b.pair, 0, exportFrames, 200))

	var m exportSeries
	mustITWaitFor(t, 20*time.Second, "every rotated file uploaded", func() (bool, string) {
		m = mustScrape(t, a)
		files := m.capture("ringtap_capture_files_total", b)
		return m.capture("ringtap_capture_packets_written_total", b) == exportFrames && files >= 3 &&
			m.export("ringtap_export_uploads_total") == files && m.export("ringtap_export_spool_files") == 0, m.String()
	})
	before := b.mustBucketObjects(t)
	var size int64
	for _, o := range before {
		size += o.size
	}
	tests := []struct {
		series string
		want   float64
	}{
		{"ringtap_export_uploads_total", float64(len(before))},
		{"ringtap_export_upload_bytes_total", float64(size)},
		{"ringtap_export_upload_failures_total", 0},
		{"ringtap_export_spool_files", 0},
		{"ringtap_export_spool_bytes", 0},
		{"ringtap_export_restarts_total", 0},
	}
	for _, tt := range tests {
		if got := m.export(tt.series); got != tt.want {
			t.Errorf("%s = %g, want %g (%d objects of %d bytes in the bucket)", tt.series, got, tt.want, len(before), size)
		}
	}
	files := int(m.capture("ringtap_capture_files_total", b))

	if err := a.mustStop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	objs := b.mustBucketObjects(t)
	if len(objs) != files+1 {
		t.Errorf("%d objects after the stop, want %d: the %d rotated files and the one the stop finished", len(objs), files+1, files)
	}
	if got := mustCapinfosTotal(t, objectPaths(objs)); got != exportFrames {
		t.Errorf("capinfos counts %d packets in the objects, want %d (sent, and the agent's ringtap_capture_packets_written_total)", got, exportFrames)
	}
	b.mustNoLocalFiles(t)
	if l := a.logLines("files still wait for upload"); len(l) != 0 {
		t.Errorf("the stop left files in the spool: %v", l)
	}
}

// TestAgentExportSpoolsThroughStoreOutage: files finished while the store
// is down wait in the spool (and on disk), a stop leaves them there, and
// the next start, with the store back, uploads each exactly once.
func TestAgentExportSpoolsThroughStoreOutage(t *testing.T) {
	b := mustAgentExportBed(t)
	a := b.mustStartAgent(t)
	b.srv.Kill()
	mustITSend(t, b.pair.A, udpFrames(t, b.pair, 0, exportFrames, 200))

	mustITWaitFor(t, 20*time.Second, "rotated files spooled, uploads failing", func() (bool, string) {
		m := mustScrape(t, a)
		files := m.capture("ringtap_capture_files_total", b)
		return m.capture("ringtap_capture_packets_written_total", b) == exportFrames && files >= 3 &&
			m.export("ringtap_export_spool_files") == files && m.export("ringtap_export_uploads_total") == 0 &&
			m.export("ringtap_export_upload_failures_total") >= 1, m.String()
	})
	if err := a.mustStop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit with the store down: %v", err)
	}
	waiting := itFinishedFiles(t, b.out)
	if entries := b.spoolEntries(t); len(entries) != len(waiting) || len(waiting) < 4 {
		t.Fatalf("%d files on disk and %d spool entries after a stop with the store down, want the same, at least 4", len(waiting), len(entries))
	}
	if l := a.logLines("files still wait for upload in the spool"); len(l) != 1 || !strings.Contains(l[0], fmt.Sprintf("files=%d", len(waiting))) {
		t.Errorf("the stop does not say that %d files wait in the spool: %v", len(waiting), l)
	}

	b.srv.Restart()
	a = b.mustStartAgent(t)
	mustITWaitFor(t, 20*time.Second, "the spooled files uploaded", func() (bool, string) {
		m := mustScrape(t, a)
		return m.export("ringtap_export_uploads_total") == float64(len(waiting)) && m.export("ringtap_export_spool_files") == 0, m.String()
	})
	if err := a.mustStop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	objs := b.mustBucketObjects(t)
	if len(objs) != len(waiting)+1 {
		t.Errorf("%d objects, want %d: the %d spooled files and the second run's own", len(objs), len(waiting)+1, len(waiting))
	}
	if got := mustCapinfosTotal(t, objectPaths(objs)); got != exportFrames {
		t.Errorf("capinfos counts %d packets in the objects, want %d", got, exportFrames)
	}
	b.mustNoLocalFiles(t)
}
