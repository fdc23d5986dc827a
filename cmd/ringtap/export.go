package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/storage"
)

// exportFlags are ringtap capture's flags for -w s3://bucket/prefix/.
type exportFlags struct {
	endpoint          string
	spool             string
	grace             time.Duration
	deleteAfterUpload bool
	checksum          string
	addressing        string
	caFile            string
	sse               string
	kmsKey            string
	ssecKeyFile       string
	keyTemplate       string
	partSize          string
	stallTimeout      time.Duration
}

func (e *exportFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.endpoint, "s3-endpoint", "", "S3 endpoint URL, http:// or https:// (default $AWS_ENDPOINT_URL, else AWS)")
	fs.StringVar(&e.spool, "spool", export.DefaultSpool, "with -w s3://: local directory where files wait until the store confirms them")
	fs.DurationVar(&e.grace, "upload-grace", 30*time.Second, "on a graceful stop, keep uploading the spool this long")
	fs.BoolVar(&e.deleteAfterUpload, "delete-after-upload", false, "remove the local copy once the store confirmed it")
	fs.StringVar(&e.checksum, "s3-checksum", "", "checksum sent and verified: md5 (default), crc32c, sha256 or none")
	fs.StringVar(&e.addressing, "s3-addressing", "auto", "auto, path or virtual (host-style bucket addressing)")
	fs.StringVar(&e.caFile, "s3-ca", "", "PEM file of the CA that signs the endpoint's certificate")
	fs.StringVar(&e.sse, "s3-sse", "", "server-side encryption: sse-s3, sse-kms or sse-c")
	fs.StringVar(&e.kmsKey, "s3-kms-key", "", "with --s3-sse sse-kms: the KMS key id")
	fs.StringVar(&e.ssecKeyFile, "s3-ssec-key", "", "with --s3-sse sse-c: file of the 32-byte key (raw or base64)")
	fs.StringVar(&e.keyTemplate, "s3-key-template", export.DefaultKeyTemplate, "object keys: {prefix} {host} {capture} {iface} {start:LAYOUT} {date} {seq} {name}")
	fs.StringVar(&e.partSize, "s3-part-size", "16MiB", "multipart part size (5MiB to 5GiB)")
	fs.DurationVar(&e.stallTimeout, "s3-stall-timeout", export.DefaultStallTimeout, "fail an upload that sends nothing for this long")
}

// exportOnlyFlags need -w s3://.
var exportOnlyFlags = []string{"s3-endpoint", "spool", "upload-grace", "delete-after-upload", "s3-checksum", "s3-addressing",
	"s3-ca", "s3-sse", "s3-kms-key", "s3-ssec-key", "s3-key-template", "s3-part-size", "s3-stall-timeout"}

// isS3 says whether -w names an object store.
func isS3(out string) bool { return strings.HasPrefix(out, "s3://") }

// exportConfig turns -w s3://... and the export flags into a checked
// configuration; nothing is created.
func exportConfig(f *captureFlags) (export.Config, error) {
	cfg, err := export.ParseURL(f.out)
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", errUsage, err)
	}
	e := f.export
	part, err := storage.ParseSize(e.partSize)
	if err != nil {
		return cfg, fmt.Errorf("%w: --s3-part-size: %w", errUsage, err)
	}
	cfg.Endpoint, cfg.CAFile, cfg.KMSKeyID, cfg.SSECKeyFile, cfg.KeyTemplate = e.endpoint, e.caFile, e.kmsKey, e.ssecKeyFile, e.keyTemplate
	cfg.Checksum, cfg.Addressing, cfg.Encryption = export.Checksum(e.checksum), export.Addressing(e.addressing), export.Encryption(e.sse)
	cfg.PartSize, cfg.StallTimeout, cfg.DeleteAfterUpload = int64(part), e.stallTimeout, e.deleteAfterUpload
	// Capture files wait in the spool directory itself; the exporter's
	// entries in a hidden directory inside it.
	cfg.Spool = filepath.Join(e.spool, ".queue")
	return cfg, nil
}

// uploader runs the exporter of one ringtap capture.
type uploader struct {
	x      *export.Exporter
	cancel context.CancelFunc
	done   chan error
	grace  time.Duration
	spool  string
}

// startUpload opens the spool (uploading what an earlier run left) and
// starts uploading.
func startUpload(cfg export.Config, f *captureFlags) (*uploader, error) {
	x, err := export.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &uploader{x: x, cancel: cancel, done: make(chan error, 1), grace: f.export.grace, spool: f.export.spool}
	go func() { u.done <- x.Run(ctx) }()
	return u, nil
}

// hook wires the recorder to the exporter: every finished file is
// enqueued, and retention keeps files that still wait for the store.
func (u *uploader) hook(o *storage.Options) {
	o.OnFinish = func(ff storage.FinishedFile) {
		if err := u.x.Enqueue(ff); err != nil {
			slog.Error("file not queued for upload: it stays on disk but is not uploaded", "file", ff.Path, "error", err)
		}
	}
	o.Pinned = u.x.Pending
}

// finish keeps uploading for the grace period, then stops. It reports how
// many files remain for the next start as an error: the capture is not
// done until its files are in the store.
func (u *uploader) finish(stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), u.grace)
	defer cancel()
	remaining, derr := u.x.Drain(ctx)
	u.cancel()
	rerr := <-u.done
	cerr := u.x.Close()
	st := u.x.Stats()
	fmt.Fprintf(stderr, "%d files uploaded (%d bytes), %d upload failures retried, %d files remain in %s\n",
		st.Uploads, st.UploadBytes, st.UploadFailures, remaining, u.spool)
	if remaining > 0 {
		return fmt.Errorf("%d files remain in the spool %s; a later ringtap capture with the same -w and --spool uploads them", remaining, u.spool)
	}
	return errors.Join(ignoreClosed(derr), rerr, cerr)
}

func ignoreClosed(err error) error {
	if errors.Is(err, export.ErrClosed) {
		return nil
	}
	return err
}
