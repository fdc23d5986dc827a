package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	minio "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

// abortTimeout bounds the abort of a failed attempt's multipart upload,
// which runs even when the attempt was stopped. An abort that does not
// make it is done by the next attempt.
const abortTimeout = 5 * time.Second

type result int

const (
	resUploaded result = iota
	resPresent
	resLost
)

// hooks let tests reach inside an upload.
type hooks struct {
	// read sees every read of an upload's body (n bytes of key).
	read func(key string, n int)
	// observe may change what the store reported about key.
	observe func(key string, o *observed)
	// abortTimeout replaces abortTimeout when set.
	abortTimeout time.Duration
}

// upload does one attempt for it: skip if the object is already there,
// abort leftovers, upload, verify.
func (x *Exporter) upload(ctx context.Context, it *item) (result, error) {
	key := it.e.Key
	f, err := os.Open(it.e.Path)
	if errors.Is(err, os.ErrNotExist) {
		return resLost, nil
	}
	if err != nil {
		return 0, &localError{fmt.Errorf("open %s: %w", it.e.Path, err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, &localError{fmt.Errorf("stat %s: %w", it.e.Path, err)}
	}
	size := fi.Size()
	if size != it.e.Size && it.attempts == 1 {
		x.log.Warn("file changed size since it was enqueued: uploading it as it is now",
			"path", it.e.Path, "enqueued_size", it.e.Size, "size", size)
	}
	d := it.dig
	if d == nil || d.size != size || d.mode != x.cfg.checksum || !it.digMod.Equal(fi.ModTime()) {
		d, err = computeDigest(f, size, partSizeFor(it.e.PartSize, size), x.cfg.checksum)
		if err != nil {
			return 0, &localError{fmt.Errorf("checksum %s: %w", it.e.Path, err)}
		}
		it.dig, it.digMod = d, fi.ModTime()
	}

	// Already there: the store confirmed an earlier attempt whose entry
	// was not removed (or the same file was enqueued again).
	o, found, err := x.stat(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("look for %s: %w", key, err)
	}
	if found {
		if err := d.check(o); err == nil {
			return resPresent, nil
		} else {
			x.log.Warn("replacing an object that is not the local file", "key", key, "path", it.e.Path, "why", err)
		}
	}

	// A file that was tried before (here or by an earlier process) may
	// have left a multipart upload pending.
	if !it.fresh || it.attempts > 1 {
		if err := x.abortIncomplete(ctx, key); err != nil {
			return 0, err
		}
	}

	if d.multipart() {
		err = x.putMultipart(ctx, it, f, d)
	} else {
		err = x.watch(ctx, it.e.Key, func(ctx context.Context, w *watchdog) error { return x.putSingle(ctx, it, f, d, w) })
	}
	if err != nil {
		return 0, err
	}

	o, found, err = x.stat(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("verify %s: %w", key, err)
	}
	if !found {
		return 0, fmt.Errorf("verify %s: %w", key, &mismatchError{what: "object", want: "present", got: "absent"})
	}
	if err := d.check(o); err != nil {
		return 0, fmt.Errorf("verify %s: %w", key, err)
	}
	return resUploaded, nil
}

// stat is what the store reports about key; found is false if there is
// no such object.
func (x *Exporter) stat(ctx context.Context, key string) (o observed, found bool, err error) {
	var opts minio.StatObjectOptions
	opts.Checksum = checksumHeader(x.cfg.checksum) != ""
	if x.sse != nil && x.sse.Type() == encrypt.SSEC {
		opts.ServerSideEncryption = x.sse
	}
	info, err := x.core.StatObject(ctx, x.cfg.Bucket, key, opts)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "NoSuchKey" || er.StatusCode == 404 && er.Code != "NoSuchBucket") {
			return o, false, nil
		}
		return o, false, err
	}
	o = observed{Size: info.Size, ETag: info.ETag}
	switch x.cfg.checksum {
	case ChecksumCRC32C:
		o.Checksum = info.ChecksumCRC32C
	case ChecksumSHA256:
		o.Checksum = info.ChecksumSHA256
	}
	if h := x.cfg.hooks; h != nil && h.observe != nil {
		h.observe(key, &o)
	}
	return o, true, nil
}

// abortIncomplete aborts every incomplete multipart upload of key. Without
// the permission to list them it warns and goes on: uploading matters
// more, and a lifecycle rule can clean up.
func (x *Exporter) abortIncomplete(ctx context.Context, key string) error {
	keyMarker, idMarker := "", ""
	for {
		res, err := x.core.ListMultipartUploads(ctx, x.cfg.Bucket, key, keyMarker, idMarker, "", 1000)
		if err != nil {
			if code, _ := errorCode(err); code == "AccessDenied" || code == "NotImplemented" {
				x.log.Warn("cannot list incomplete multipart uploads: leftovers of failed attempts may stay; grant s3:ListBucketMultipartUploads or set a lifecycle rule AbortIncompleteMultipartUpload",
					"key", key, "err", err)
				return nil
			}
			return fmt.Errorf("list incomplete uploads of %s: %w", key, err)
		}
		for _, u := range res.Uploads {
			if u.Key != key {
				continue
			}
			err := x.core.AbortMultipartUpload(ctx, x.cfg.Bucket, key, u.UploadID)
			if code, _ := errorCode(err); err != nil && code != "NoSuchUpload" {
				return fmt.Errorf("abort incomplete upload %s of %s: %w", u.UploadID, key, err)
			}
			x.stats.aborted.Add(1)
			x.log.Info("aborted an incomplete multipart upload left by an earlier attempt", "key", key, "upload_id", u.UploadID)
		}
		if !res.IsTruncated {
			return nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// putOptions are the object's headers: content type, metadata,
// encryption, and extra headers (checksum) as amz headers.
func (x *Exporter) putOptions(it *item, extra map[string]string) minio.PutObjectOptions {
	meta := maps.Clone(it.e.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	maps.Copy(meta, extra)
	return minio.PutObjectOptions{
		ContentType:          it.e.ContentType,
		UserMetadata:         meta,
		ServerSideEncryption: x.sse,
		DisableContentSha256: x.unsignedPayload(),
	}
}

// unsignedPayload: with a checksum on every request the store already
// rejects a body that was changed on the way, so the payload is not also
// hashed for the signature (SigV4 streaming over plain HTTP hashes every
// 64 KiB chunk on both ends). Over HTTPS minio-go never hashes it. Only
// with checksum none is the signed payload kept, as the one check left.
func (x *Exporter) unsignedPayload() bool { return x.cfg.checksum != ChecksumNone }

func (x *Exporter) putSingle(ctx context.Context, it *item, f *os.File, d *digest, w *watchdog) error {
	extra := map[string]string{}
	if h := checksumHeader(d.mode); h != "" {
		extra[h] = d.partChecksum(1)
	}
	_, err := x.core.PutObject(ctx, x.cfg.Bucket, it.e.Key, x.body(it.e.Key, f, 0, d.size, w), d.size,
		d.partContentMD5(1), "", x.putOptions(it, extra))
	if err != nil {
		return fmt.Errorf("put %s: %w", it.e.Key, err)
	}
	return nil
}

func (x *Exporter) putMultipart(ctx context.Context, it *item, f *os.File, d *digest) (err error) {
	key := it.e.Key
	extra := map[string]string{}
	if a := checksumAlgorithm(d.mode); a != "" {
		extra["X-Amz-Checksum-Algorithm"] = a
	}
	id, err := x.core.NewMultipartUpload(ctx, x.cfg.Bucket, key, x.putOptions(it, extra))
	if err != nil {
		return fmt.Errorf("start multipart upload of %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			x.abortOwn(key, id)
		}
	}()

	n := d.nparts()
	parts := make([]minio.CompletePart, n)
	err = x.watch(ctx, key, func(ctx context.Context, w *watchdog) error {
		return x.putParts(ctx, key, id, f, d, w, parts)
	})
	if err != nil {
		return err
	}
	// Not watched: a store may take minutes to assemble many parts.
	_, err = x.core.CompleteMultipartUpload(ctx, x.cfg.Bucket, key, id, parts,
		minio.PutObjectOptions{ServerSideEncryption: x.sse})
	if err != nil {
		return fmt.Errorf("complete multipart upload of %s: %w", key, err)
	}
	return nil
}

// putParts uploads the parts, Config.Concurrency at a time, into parts.
func (x *Exporter) putParts(ctx context.Context, key, id string, f *os.File, d *digest, w *watchdog, parts []minio.CompletePart) error {
	n := d.nparts()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(x.cfg.Concurrency, n) {
		wg.Go(func() {
			for pctx.Err() == nil {
				i := int(next.Add(1))
				if i > n {
					return
				}
				off, size := d.part(i)
				p, err := x.core.PutObjectPart(pctx, x.cfg.Bucket, key, id, i, x.body(key, f, off, size, w), size,
					minio.PutObjectPartOptions{Md5Base64: d.partContentMD5(i), CustomHeader: d.partHeader(i), SSE: x.sse,
						DisableContentSha256: x.unsignedPayload()})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("upload part %d of %d of %s: %w", i, n, key, err) })
					cancel()
					return
				}
				cp := minio.CompletePart{PartNumber: i, ETag: p.ETag}
				switch d.mode {
				case ChecksumCRC32C:
					cp.ChecksumCRC32C = d.partChecksum(i)
				case ChecksumSHA256:
					cp.ChecksumSHA256 = d.partChecksum(i)
				}
				parts[i-1] = cp
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// abortOwn aborts a failed attempt's multipart upload, even when the
// attempt was stopped.
func (x *Exporter) abortOwn(key, id string) {
	timeout := abortTimeout
	if h := x.cfg.hooks; h != nil && h.abortTimeout > 0 {
		timeout = h.abortTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := x.core.AbortMultipartUpload(ctx, x.cfg.Bucket, key, id); err != nil {
		x.log.Warn("multipart upload of a failed attempt not aborted: the next attempt aborts it", "key", key, "upload_id", id, "err", err)
		return
	}
	x.stats.aborted.Add(1)
}

// body is n bytes of f from off, read as they are sent: no buffer, and
// seekable, so minio-go can retry a request by seeking back. It must not
// be an io.Closer (minio-go closes closable bodies). Every read tells the
// watchdog that the upload moves.
func (x *Exporter) body(key string, f *os.File, off, n int64, w *watchdog) io.ReadSeeker {
	b := &body{r: io.NewSectionReader(f, off, n), w: w}
	if h := x.cfg.hooks; h != nil && h.read != nil {
		b.hook = func(n int) { h.read(key, n) }
	}
	return b
}

type body struct {
	r    *io.SectionReader
	w    *watchdog
	hook func(int)
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.w.moved()
		if b.hook != nil {
			b.hook(n)
		}
	}
	return n, err
}

func (b *body) Seek(off int64, whence int) (int64, error) { return b.r.Seek(off, whence) }

// errStalled: an upload sent nothing for Config.StallTimeout.
var errStalled = errors.New("upload stalled")

// watchdog cancels an upload whose body has not been read for the stall
// timeout: a half-open connection (a partition without a reset) would
// otherwise hold the upload, and every file behind it, until TCP gives up
// many minutes later.
type watchdog struct{ last atomic.Int64 }

func (w *watchdog) moved() { w.last.Store(time.Now().UnixNano()) }

// watch runs put under a watchdog.
func (x *Exporter) watch(ctx context.Context, key string, put func(context.Context, *watchdog) error) error {
	stall := x.cfg.StallTimeout
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &watchdog{}
	w.moved()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(stall / 4)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if time.Since(time.Unix(0, w.last.Load())) > stall {
					cancel(errStalled)
					return
				}
			}
		}
	})
	err := put(wctx, w)
	close(stop)
	wg.Wait()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errStalled) {
		return fmt.Errorf("upload of %s sent nothing for %v (a half-open connection?): %w", key, stall, errStalled)
	}
	return err
}
