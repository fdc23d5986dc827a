package storage

import (
	"io"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quota is disk space shared by the files a test writes: a write beyond
// it is cut short with ENOSPC, as on a full file system.
type quota struct {
	mu   sync.Mutex
	left int64
}

func (q *quota) set(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.left = n
}

func (q *quota) wrap(w io.Writer) io.Writer { return quotaWriter{q, w} }

type quotaWriter struct {
	q *quota
	w io.Writer
}

func (w quotaWriter) Write(p []byte) (int, error) {
	w.q.mu.Lock()
	n := int(min(int64(len(p)), w.q.left))
	w.q.left -= int64(n)
	w.q.mu.Unlock()
	m, err := w.w.Write(p[:n])
	if err == nil && m < len(p) {
		err = syscall.ENOSPC
	}
	return m, err
}

// TestWriteErrorCutsBackAndResumes fills a quota mid-file: the file is
// cut back to its last complete block or frame and finished, the rest is
// counted as drops, WritePacket never fails, and a new file is written
// once there is space again.
func TestWriteErrorCutsBackAndResumes(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressZstd, CompressGzip} {
		t.Run(comp.String(), func(t *testing.T) {
			dir := t.TempDir()
			q := &quota{}
			q.set(150_000)
			if comp != CompressNone {
				q.set(15_000) // the corpus compresses about 15 times
			}
			clock := newClock()
			r := mustRecorder(t, Options{Dir: dir, Compression: comp, FrameSize: MinFrameSize, chunkSize: 16 << 10,
				wrapOutput: q.wrap, resumeBackoff: 50 * time.Millisecond, now: clock.Now})
			ts := t0.UnixNano()
			n := 0
			write := func(k int, pause bool) {
				for range k {
					if err := r.WritePacket(seqPacket(n, ts)); err != nil {
						t.Fatalf("WritePacket: %v", err)
					}
					n++
					ts += int64(time.Millisecond)
					if pause && n%100 == 0 {
						r.Flush()
						time.Sleep(time.Millisecond) // let the output see the error
					}
				}
			}
			write(3000, true)
			if r.Stats().WriteErrors == 0 {
				t.Fatalf("no write error after filling the quota: %+v", r.Stats())
			}
			q.set(1 << 40)
			time.Sleep(20 * time.Millisecond)
			write(500, true) // past the backoff: a new file
			mustClose(t, r)
			s := r.Stats()
			checkAccounted(t, r, n)
			if s.WriteDrops == 0 || s.FilesWritten < 2 {
				t.Fatalf("stats %+v: want drops and a file after the error", s)
			}
			files := bySeq(dataFiles(t, dir))
			var got []int
			for _, f := range files {
				res := mustRead(t, f) // reads cleanly to its end
				if c := capinfosPackets(t, f); c != len(res.seqs) {
					t.Errorf("capinfos counts %d packets in %s, want %d", c, f, len(res.seqs))
				}
				got = append(got, res.seqs...)
			}
			if uint64(len(got)) != s.PacketsWritten {
				t.Errorf("%d packets in the files, stats say %d", len(got), s.PacketsWritten)
			}
			if last := got[len(got)-1]; last != n-1 {
				t.Errorf("the last packet written is %d, want %d: writing did not resume", last, n-1)
			}
			if hidden := hiddenFiles(t, dir); len(hidden) != 0 {
				t.Errorf("temporary files left: %v", hidden)
			}
		})
	}
}
