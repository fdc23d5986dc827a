package storage

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCompressedFilesReadByTools writes compressed files and reads them
// with the real tools: zstd -d and gzip -d give the pcapng that tshark
// and capinfos read, and tshark and capinfos read the compressed file
// itself.
func TestCompressedFilesReadByTools(t *testing.T) {
	for _, tc := range []struct {
		comp   Compression
		level  int
		tool   []string
		tshark bool // tshark takes 2 s to start: once per compression
	}{
		{CompressZstd, 1, []string{"zstd", "-d", "-q", "-c"}, true},
		{CompressZstd, 19, []string{"zstd", "-d", "-q", "-c"}, false},
		{CompressGzip, 6, []string{"gzip", "-d", "-c"}, true},
		{CompressGzip, 1, []string{"gzip", "-d", "-c"}, false},
	} {
		t.Run(tc.comp.String()+" level "+strconv.Itoa(tc.level), func(t *testing.T) {
			dir := t.TempDir()
			const n = 3000
			r := mustRecorder(t, Options{Dir: dir, Compression: tc.comp, CompressionLevel: tc.level, FrameSize: 256 << 10, now: newClock().Now})
			mustWritePackets(t, r, 0, n, t0.UnixNano(), time.Microsecond)
			mustClose(t, r)
			var total int
			for _, f := range dataFiles(t, dir) {
				raw := mustRun(t, tc.tool[0], append(tc.tool[1:], f)...)
				plain := filepath.Join(t.TempDir(), "plain.pcapng")
				if err := os.WriteFile(plain, []byte(raw), 0o644); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal([]byte(raw), decompressed(t, f)) {
					t.Errorf("%s: %s and our decoder disagree", f, tc.tool[0])
				}
				want := len(mustRead(t, f).seqs)
				if tc.tshark {
					if got := tsharkPackets(t, f); got != want {
						t.Errorf("tshark reads %d packets from %s, want %d", got, f, want)
					}
				}
				for _, p := range []string{plain, f} {
					if got := capinfosPackets(t, p); got != want {
						t.Errorf("capinfos counts %d packets in %s, want %d", got, p, want)
					}
				}
				total += want
			}
			if total != n {
				t.Errorf("%d packets in all files, want %d", total, n)
			}
			s := r.Stats()
			if s.CompressorBytesOut == 0 || s.CompressorBytesIn <= s.CompressorBytesOut || s.BytesWritten != s.CompressorBytesOut {
				t.Errorf("compressor counters %+v", s)
			}
		})
	}
}

// TestZstdFrames checks that a zstd file is independent frames of at
// most FrameSize bytes of input, each holding whole pcapng blocks, so
// that a reader can start at any frame.
func TestZstdFrames(t *testing.T) {
	for _, comp := range []Compression{CompressZstd, CompressGzip} {
		t.Run(comp.String(), func(t *testing.T) {
			dir := t.TempDir()
			const frame = 64 << 10
			r := mustRecorder(t, Options{Dir: dir, Compression: comp, FrameSize: frame, frameAge: time.Hour, now: newClock().Now})
			mustWritePackets(t, r, 0, 4000, t0.UnixNano(), time.Microsecond)
			mustClose(t, r)
			files := dataFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("files %v", files)
			}
			fh, err := os.Open(files[0])
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			var src frameSource
			if comp == CompressZstd {
				z, err := newZstdSource(fh)
				if err != nil {
					t.Fatal(err)
				}
				defer z.close()
				src = z
			} else {
				src = newGzipSource(fh)
			}
			var frames int
			var whole []byte
			for {
				sp, b, err := src.next()
				if err != nil {
					break
				}
				frames++
				if !sp.complete {
					t.Fatalf("frame %d is not complete", frames)
				}
				if len(b) > frame {
					t.Errorf("frame %d holds %d bytes, above the %d frame size", frames, len(b), frame)
				}
				// Whole blocks: walking block lengths ends exactly at the
				// frame's end.
				off := 0
				for off+8 <= len(b) {
					off += int(binary.LittleEndian.Uint32(b[off+4:]))
				}
				if off != len(b) {
					t.Errorf("frame %d: blocks end at %d of %d bytes", frames, off, len(b))
				}
				whole = append(whole, b...)
			}
			if want := len(decompressed(t, files[0])); len(whole) != want || frames < want/frame {
				t.Errorf("%d frames of %d bytes in all, want %d bytes in at least %d frames", frames, len(whole), want, want/frame)
			}
			if comp == CompressZstd {
				// zstd -l agrees on the frame count.
				out := mustRun(t, "zstd", "-l", "-v", files[0])
				if !strings.Contains(out, "# Zstandard Frames: "+strconv.Itoa(frames)) {
					t.Errorf("zstd -l does not count %d frames:\n%s", frames, out)
				}
			}
		})
	}
}

// TestFrameEndsWhenIdle checks that an idle capture's open frame ends
// within about the frame age, so that a crash loses little.
func TestFrameEndsWhenIdle(t *testing.T) {
	dir := t.TempDir()
	r := mustRecorder(t, Options{Dir: dir, Compression: CompressZstd, frameAge: 20 * time.Millisecond})
	mustWritePackets(t, r, 0, 10, time.Now().UnixNano(), time.Microsecond)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().PacketsWritten < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.Stats().PacketsWritten; got != 10 {
		t.Fatalf("%d packets committed after idling, want 10: the frame did not end", got)
	}
	mustClose(t, r)
}

// slowWriter sleeps before each write: a slow disk or compressor.
type slowWriter struct {
	w     interface{ Write([]byte) (int, error) }
	delay time.Duration
}

func (s slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.w.Write(p)
}

// TestSlowOutputDropsWholePackets makes the output too slow for a tiny
// queue: packets are dropped and counted, the writer never blocks for
// long, and the file stays valid.
func TestSlowOutputDropsWholePackets(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			dir := t.TempDir()
			r := mustRecorder(t, Options{Dir: dir, Compression: comp, FrameSize: MinFrameSize, queueChunks: 2, chunkSize: 16 << 10,
				wrapOutput: func(w io.Writer) io.Writer { return slowWriter{w, 20 * time.Millisecond} }, now: newClock().Now})
			const n = 5000
			start := time.Now()
			mustWritePackets(t, r, 0, n, t0.UnixNano(), time.Microsecond)
			if took := time.Since(start); took > time.Second {
				t.Errorf("writing took %v: the writer waited for the output", took)
			}
			mustClose(t, r)
			s := r.Stats()
			if s.WriteDrops == 0 || s.WriteErrors != 0 {
				t.Errorf("stats %+v: want drops and no errors", s)
			}
			checkAccounted(t, r, n)
			files := dataFiles(t, dir)
			var seqs []int
			for _, f := range files {
				res := mustRead(t, f)
				seqs = append(seqs, res.seqs...)
				if got := capinfosPackets(t, f); got != len(res.seqs) {
					t.Errorf("capinfos counts %d packets in %s, want %d", got, f, len(res.seqs))
				}
			}
			if uint64(len(seqs)) != s.PacketsWritten {
				t.Errorf("%d packets in the files, stats say %d", len(seqs), s.PacketsWritten)
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("packet %d after %d: drops must remove whole packets, in order", seqs[i], seqs[i-1])
				}
			}
		})
	}
}
