package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// countingWriter counts the bytes written to a file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// output is the output goroutine: it writes (and compresses) the
// buffers of the queue in order, and hands finished files to the
// finisher.
func (r *Recorder) output() {
	defer close(r.fin)
	tick := max(r.opts.frameAge/2, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case it, ok := <-r.out:
			if !ok {
				return
			}
			r.process(it)
			if it.pooled {
				r.free <- it.buf[:0] // room for every pool buffer
			} else {
				r.unpooled.Add(-1)
			}
		case <-t.C:
			// End a frame that has waited a while, so that a crash
			// loses at most that much.
			if f := r.outCur; f != nil && r.enc != nil && !f.dead && f.frameIn > 0 && len(r.out) == 0 &&
				r.opts.now().Sub(f.frameSince) >= r.opts.frameAge {
				if err := r.endFrame(f); err != nil {
					r.fail(f, err, 0)
				}
			}
		}
	}
}

// process writes one item.
func (r *Recorder) process(it item) {
	f := it.f
	if f.dead {
		r.counters.writeDrops.Add(it.packets)
		return
	}
	if !f.opened {
		if err := r.openFile(f); err != nil {
			r.fail(f, fmt.Errorf("create %s: %w", f.temp, err), it.packets)
			return
		}
	}
	r.outCur = f
	if len(it.buf) > 0 {
		if r.enc == nil {
			if _, err := f.cw.Write(it.buf); err != nil {
				r.fail(f, err, it.packets)
				return
			}
			f.committed.add(it.packets, it.min, it.max)
			r.commitBytes(f, int64(len(it.buf)), it.packets)
		} else {
			if f.frameIn > 0 && f.frameIn+int64(len(it.buf)) > int64(r.opts.FrameSize) {
				if err := r.endFrame(f); err != nil {
					r.fail(f, err, it.packets)
					return
				}
			}
			if f.frameIn == 0 {
				f.frameSince = r.opts.now()
			}
			if _, err := r.enc.Write(it.buf); err != nil {
				r.fail(f, err, it.packets)
				return
			}
			f.frameIn += int64(len(it.buf))
			f.frame.add(it.packets, it.min, it.max)
			if f.frameIn >= int64(r.opts.FrameSize) {
				if err := r.endFrame(f); err != nil {
					r.fail(f, err, 0)
					return
				}
			}
		}
	}
	if it.flush && r.enc != nil && f.frameIn > 0 && len(r.out) == 0 {
		var err error
		if r.opts.now().Sub(f.frameSince) >= r.opts.frameAge {
			err = r.endFrame(f)
		} else {
			err = r.enc.Flush()
		}
		if err != nil {
			r.fail(f, err, 0)
			return
		}
	}
	if it.last {
		f.finished = f.end // written by the writer before it sent this item
		if err := r.endFrame(f); err != nil {
			r.fail(f, err, 0)
			return
		}
		r.outCur = nil
		r.toFinisher(f)
	}
}

// commitBytes accounts bytes and packets that are in the file for good.
func (r *Recorder) commitBytes(f *file, n int64, packets uint64) {
	f.committed.bytes += n
	r.counters.bytesWritten.Add(uint64(n))
	r.counters.packetsWritten.Add(packets)
	if r.failing {
		r.failing = false
		r.log.Info("writing capture files again", "file", f.temp)
	}
}

// endFrame ends the open compressed frame and commits it.
func (r *Recorder) endFrame(f *file) error {
	if r.enc == nil || f.frameIn == 0 {
		return nil
	}
	if err := r.enc.EndFrame(); err != nil {
		return err
	}
	out := f.cw.n - f.committed.bytes
	r.counters.compIn.Add(uint64(f.frameIn))
	r.counters.compOut.Add(uint64(out))
	f.committed.add(f.frame.packets, f.frame.min, f.frame.max)
	r.commitBytes(f, out, f.frame.packets)
	f.frame, f.frameIn = span{}, 0
	return nil
}

// openFile creates the hidden temporary file of f, locked.
func (r *Recorder) openFile(f *file) error {
	if r.namer.nested() {
		if err := os.MkdirAll(filepath.Dir(f.temp), 0o755); err != nil {
			return err
		}
	}
	r.pendingMu.Lock()
	wait := r.pending[f.temp]
	r.pendingMu.Unlock()
	if wait != nil {
		<-wait // the previous file of this name is being renamed
	}
	fh, err := os.OpenFile(f.temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := lockFile(fh); err != nil {
		fh.Close()
		os.Remove(f.temp)
		return fmt.Errorf("lock %s: %w", f.temp, err)
	}
	var w io.Writer = fh
	if r.opts.wrapOutput != nil {
		w = r.opts.wrapOutput(fh)
	}
	f.fh, f.cw, f.opened = fh, &countingWriter{w: w}, true
	if r.enc != nil {
		r.enc.Reset(f.cw)
	}
	return nil
}

// fail handles a write error on f: the packets not committed are counted
// as drops, the file is cut back to its last commit point (a block or
// frame boundary) and finished, or removed if it holds no packet. The
// writer sees f.failed and starts a new file after a backoff.
func (r *Recorder) fail(f *file, err error, lost uint64) {
	r.counters.writeErrors.Add(1)
	r.counters.writeDrops.Add(lost + f.frame.packets)
	f.frame, f.frameIn = span{}, 0
	f.dead = true
	f.failed.Store(true)
	if r.outCur == f {
		r.outCur = nil
	}
	if r.enc != nil {
		r.enc.Reset(io.Discard)
	}
	if !r.failing {
		r.failing = true
		r.log.Error("capture file write failed: dropping packets until a new file can be written", "file", f.temp, "error", err)
	} else {
		r.log.Debug("capture file write failed again", "file", f.temp, "error", err)
	}
	if f.fh == nil {
		return
	}
	if terr := f.fh.Truncate(f.committed.bytes); terr != nil {
		// Leave the temporary file: recovery will cut it.
		r.log.Error("cut capture file back to its last complete block", "file", f.temp, "error", terr)
		f.fh.Close()
		r.setFinalErr(f, fmt.Errorf("cut %s back after a write error: %w", f.temp, terr))
		return
	}
	if f.committed.packets == 0 {
		f.fh.Close()
		os.Remove(f.temp)
		return
	}
	if f.finished.IsZero() {
		f.finished = r.opts.now()
	}
	r.toFinisher(f)
}

// toFinisher queues f for its rename.
func (r *Recorder) toFinisher(f *file) {
	r.pendingMu.Lock()
	if _, ok := r.pending[f.temp]; !ok {
		r.pending[f.temp] = make(chan struct{})
	}
	r.pendingMu.Unlock()
	r.fin <- f
}

// released tells a file waiting for f's temporary name that it is free.
func (r *Recorder) released(f *file) {
	r.pendingMu.Lock()
	defer r.pendingMu.Unlock()
	if ch, ok := r.pending[f.temp]; ok {
		close(ch)
		delete(r.pending, f.temp)
	}
}

// setFinalErr records err for Close when f is the last file.
func (r *Recorder) setFinalErr(f *file, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if int64(f.seq) == r.finalSeq.Load() {
		r.finalErr = errors.Join(r.finalErr, err)
	}
}

// finisher syncs, describes and renames finished files, in order.
func (r *Recorder) finisher() {
	for f := range r.fin {
		err := r.finish(f)
		r.released(f)
		if err != nil {
			r.counters.writeErrors.Add(1)
			r.log.Error("finish capture file: it stays under its temporary name for recovery", "file", f.temp, "error", err)
			r.setFinalErr(f, err)
		}
	}
}

// finish makes f durable under its final name: sync the data, write the
// sidecar (synced, renamed), sync the directory, rename the data file,
// sync the directory again. A file with its final name is therefore
// complete, and has its sidecar unless the sidecar could not be written.
func (r *Recorder) finish(f *file) error {
	defer f.fh.Close()
	if err := f.fh.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	ff := FinishedFile{
		Path: f.path, Size: f.committed.bytes, Packets: f.committed.packets, Start: f.start, End: f.finished.UTC(),
		Seq: f.seq, Interfaces: r.ifaces, Capture: r.opts.Capture,
		Compression: compressionName(r.opts.Compression), Format: r.opts.Format.String(),
	}
	if f.committed.packets > 0 {
		ff.First, ff.Last = time.Unix(0, f.committed.min).UTC(), time.Unix(0, f.committed.max).UTC()
	}
	dir := filepath.Dir(f.path)
	r.finishMu.Lock()
	defer r.finishMu.Unlock()
	if r.opts.Pinned != nil {
		if _, err := os.Stat(f.path); err == nil && r.opts.Pinned(f.path) {
			r.counters.retLosses.Add(1)
			r.log.Error("capture file replaced by its successor while waiting for export (the name came round again)", "file", f.path)
		}
	}
	sc, err := writeSidecar(ff)
	if err != nil {
		r.log.Warn("capture file has no sidecar", "file", f.path, "error", err)
	}
	ff.Sidecar = sc
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	if err := os.Rename(f.temp, f.path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if err := syncDir(dir); err != nil {
		r.log.Error("sync directory after rename", "dir", dir, "error", err)
	}
	r.counters.filesWritten.Add(1)
	if r.opts.OnFinish != nil {
		r.opts.OnFinish(ff)
	}
	r.retention.trigger()
	r.postrotate.enqueue(ff.Path)
	return nil
}
