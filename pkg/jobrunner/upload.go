package jobrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ringtap/ringtap/pkg/jobapi"
)

// maxMismatches is how many times an upload the console found to have
// another SHA-256 is sent again from the start.
const maxMismatches = 3

// uploadConsole sends the result through the console's resumable
// upload: HEAD says where the console's copy ends, PATCH bodies of
// ChunkSize carry the rest with the file's length and SHA-256. Network
// errors and 5xx are retried with backoff (HEAD again first); an answer
// that carries Upload-Offset (409, a body cut off) resumes there. It
// returns nil once the console has the whole result, ctx's error when
// ctx ended, else the console's refusal.
func (rn *run) uploadConsole(ctx context.Context, rec record) error {
	path := filepath.Join(rn.dir, CaptureFile)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != rec.Size {
		return fmt.Errorf("the capture file %s has %d bytes, not the %d it was finished with", path, fi.Size(), rec.Size)
	}
	p := jobapi.Path(jobapi.PcapPath, rn.id)
	off := int64(-1) // unknown: ask
	failures, mismatches, conflicts := 0, 0, 0
	backoff := func(err error) bool {
		failures++
		d := rn.r.backoff(failures)
		lv := slog.LevelDebug
		if failures == 1 || failures%10 == 0 {
			lv = slog.LevelWarn
		}
		rn.setErr(err)
		rn.log.Log(ctx, lv, "upload failed: retrying", "error", oneLine(err), "failures", failures, "retry_in", d.Round(time.Millisecond))
		return sleep(ctx, d)
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if off < 0 {
			resp, err := rn.r.do(ctx, request{method: http.MethodHead, path: p, timeout: rn.r.opts.RequestTimeout})
			if err != nil {
				if !retryable(err) {
					return err
				}
				if !backoff(err) {
					return ctx.Err()
				}
				continue
			}
			held, ok := uploadOffset(resp.Header)
			if !ok {
				err := &APIError{Method: http.MethodHead, Path: p, StatusCode: http.StatusBadGateway, Message: "the answer has no " + jobapi.HeaderOffset}
				if !backoff(err) {
					return ctx.Err()
				}
				continue
			}
			if resp.Header.Get(jobapi.HeaderComplete) == "?1" {
				rn.setUploaded(rec.Size)
				return nil
			}
			if held > rec.Size {
				return fmt.Errorf("the console holds %d bytes of the upload, more than the file's %d: it is not this file", held, rec.Size)
			}
			off = held
			rn.setUploaded(off)
		}
		n := min(rn.r.opts.ChunkSize, rec.Size-off)
		h := http.Header{}
		h.Set("Content-Type", jobapi.UploadContentType)
		h.Set(jobapi.HeaderOffset, strconv.FormatInt(off, 10))
		h.Set(jobapi.HeaderLength, strconv.FormatInt(rec.Size, 10))
		h.Set(jobapi.HeaderSHA256, rec.SHA256)
		resp, err := rn.r.do(ctx, request{method: http.MethodPatch, path: p, header: h,
			body: io.NewSectionReader(f, off, n), length: n, timeout: rn.r.opts.ChunkTimeout})
		if err == nil {
			held, ok := uploadOffset(resp.Header)
			if !ok {
				held = off + n
			}
			if held > off {
				rn.r.stats.uploadBytes.Add(uint64(held - off))
			}
			off, failures, conflicts = held, 0, 0
			rn.setUploaded(off)
			if resp.Header.Get(jobapi.HeaderComplete) == "?1" || off >= rec.Size {
				if resp.Header.Get(jobapi.HeaderComplete) != "?1" {
					off = -1 // the console says where it stands
					continue
				}
				rn.setUploaded(rec.Size)
				return nil
			}
			continue
		}
		var ae *APIError
		errors.As(err, &ae)
		held, hasOffset := int64(-1), false
		if ae != nil {
			held, hasOffset = uploadOffset(ae.Header)
		}
		switch code := statusOf(err); {
		case code == http.StatusConflict && hasOffset:
			// The console's copy ends elsewhere: resume there.
			conflicts++
			if conflicts > 10 {
				return fmt.Errorf("the console keeps moving its upload offset: %w", err)
			}
			rn.log.Info("resuming the upload where the console's copy ends", "offset", held, "sent_from", off)
			off = held
			if off > rec.Size {
				return fmt.Errorf("the console holds %d bytes of the upload, more than the file's %d: it is not this file", off, rec.Size)
			}
			continue
		case code == http.StatusUnprocessableEntity:
			mismatches++
			if mismatches >= maxMismatches {
				return fmt.Errorf("the console found another SHA-256 %d times: %w", mismatches, err)
			}
			rn.log.Warn("the console discarded the upload (SHA-256 mismatch): sending it again from the start", "error", oneLine(err))
			off = 0
			continue
		case code == http.StatusBadRequest && hasOffset:
			// The body broke off: resume where the console's copy ends.
			off = held
			if !backoff(err) {
				return ctx.Err()
			}
			continue
		case !retryable(err):
			return err
		}
		if hasOffset {
			off = held
		} else {
			off = -1
		}
		if !backoff(err) {
			return ctx.Err()
		}
	}
}

// uploadOffset reads Upload-Offset.
func uploadOffset(h http.Header) (int64, bool) {
	v := h.Get(jobapi.HeaderOffset)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func (rn *run) setUploaded(n int64) {
	rn.mu.Lock()
	rn.uploaded = n
	rn.mu.Unlock()
}
