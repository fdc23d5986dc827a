package jobrunner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// recoverCapture carries on a run that was capturing when the agent
// died: its file is cut after the last whole block, and the run ends
// failed with ReasonRestarted once the file is uploaded (or with
// ReasonRestartedEmpty when nothing whole was written).
func (rn *run) recoverCapture() {
	path := filepath.Join(rn.dir, CaptureFile)
	prog, size, cut, err := truncateCapture(path)
	now := time.Now().UTC()
	if err != nil || size == 0 {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			rn.log.Error("the capture of a run the agent died in cannot be read: it ends without a result", "file", path, "error", err)
		}
		os.Remove(path)
		rn.finishWithout(outcomeFailed, ReasonRestartedEmpty, jobapi.Progress{}, now)
		return
	}
	_, sum, err := hashFile(path)
	if err != nil {
		rn.log.Error("the capture of a run the agent died in cannot be read: it ends without a result", "file", path, "error", err)
		rn.finishWithout(outcomeFailed, ReasonRestartedEmpty, prog, now)
		return
	}
	prog.Size = uint64(size)
	rn.size.Store(size)
	rn.mu.Lock()
	rn.progress, rn.pending = prog, "uploading"
	rn.mu.Unlock()
	rn.r.mu.Lock()
	rn.budget = runBudget{onDisk: size}
	rn.r.mu.Unlock()
	if err := rn.save(func(rec *record) {
		rec.State, rec.StoppedAt, rec.Outcome, rec.Reason = stateUploading, now, outcomeFailed, ReasonRestarted
		rec.Progress, rec.HasFile, rec.Size, rec.SHA256 = prog, true, size, sum
	}); err != nil {
		rn.log.Error("write the run's record", "error", err)
	}
	rn.log.Warn("the agent died during this run: its capture is cut after the last whole block and uploaded, the run ends failed",
		"file", path, "packets", prog.Packets, "size", size, "cut_bytes", cut, "pid_then", rn.rec.PID)
}

// truncateCapture cuts the pcapng at path after its last whole block
// (pcapio.Reader.Offset) and returns what it holds: its packets and
// bytes of packet data, its size and how many bytes were cut. A file
// whose header is not whole has size 0.
func truncateCapture(path string) (prog jobapi.Progress, size, cut int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return prog, 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return prog, 0, 0, err
	}
	rd, err := pcapio.NewReader(f)
	var off int64
	if err == nil {
		var p pcapio.Packet
		for {
			if err = rd.Next(&p); err != nil {
				break
			}
			prog.Packets++
			prog.Bytes += uint64(len(p.Data))
		}
		off = rd.Offset()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil && !errors.Is(err, pcapio.ErrFormat) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return prog, 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if off < fi.Size() {
		if err := f.Truncate(off); err != nil {
			return prog, 0, 0, fmt.Errorf("cut %s after its last whole block: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return prog, 0, 0, fmt.Errorf("cut %s: %w", path, err)
		}
	}
	return prog, off, fi.Size() - off, nil
}

// hashFile is the size and hex SHA-256 of the file at path.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", fmt.Errorf("%w: %s", errNoFile, path)
	}
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
