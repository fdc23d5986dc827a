package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// mustCaptureBytes records n packets into one finished file and returns
// its bytes.
func mustCaptureBytes(t *testing.T, o Options, n int) []byte {
	t.Helper()
	dir := t.TempDir()
	o.Dir, o.now = dir, newClock().Now
	r := mustRecorder(t, o)
	mustWritePackets(t, r, 0, n, t0.UnixNano(), time.Millisecond)
	mustClose(t, r)
	files := dataFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blockEnds lists where each pcapng block or pcap record of an
// uncompressed file ends, and whether it is a packet; the first entry is
// the end of the file header (section header and interfaces, or the pcap
// header).
func blockEnds(t *testing.T, b []byte) (headerEnd int, ends []int, packet []bool) {
	t.Helper()
	if binary.LittleEndian.Uint32(b) != 0x0a0d0d0a {
		off := 24
		headerEnd = off
		for off < len(b) {
			off += 16 + int(binary.LittleEndian.Uint32(b[off+8:]))
			ends, packet = append(ends, off), append(packet, true)
		}
		return headerEnd, ends, packet
	}
	off := 0
	for off < len(b) {
		typ := binary.LittleEndian.Uint32(b[off:])
		off += int(binary.LittleEndian.Uint32(b[off+4:]))
		if typ == 0x0a0d0d0a || typ == 1 {
			headerEnd = off
			continue
		}
		ends, packet = append(ends, off), append(packet, typ == 6)
	}
	return headerEnd, ends, packet
}

// mustPlaceTemp writes b as the temporary file of name in a new
// directory.
func mustPlaceTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	return mustPlaceTempIn(t, t.TempDir(), name, b)
}

// fastTempDir is a directory on tmpfs if there is one, where the syncs
// of thousands of recoveries cost nothing.
func fastTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "storage-test")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func mustPlaceTempIn(t *testing.T, parent, name string, b []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "cut")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tempName(name)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustRecover(t *testing.T, dir string) []RecoveredFile {
	t.Helper()
	rep, err := Recover(dir, discardLog)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	for _, rf := range rep {
		if rf.Err != nil {
			t.Fatalf("recover %s: %v", rf.Temp, rf.Err)
		}
	}
	return rep
}

// TestRecoverTornUncompressed cuts a pcapng and a pcap file of eight
// packets at every offset from inside the header to the end and recovers
// each: the file keeps exactly the complete packets, reads cleanly, and
// capinfos agrees.
func TestRecoverTornUncompressed(t *testing.T) {
	for _, format := range []pcapio.Format{pcapio.FormatPCAPNG, pcapio.FormatPCAP} {
		t.Run(format.String(), func(t *testing.T) {
			full := mustCaptureBytes(t, Options{Format: format}, 8)
			name := "eth0-x-0." + format.String()
			headerEnd, ends, packet := blockEnds(t, full)
			parent := fastTempDir(t)
			var paths []string
			var wants []int
			// Every offset from inside the header to the end.
			for cut := headerEnd - 20; cut <= len(full); cut++ {
				dir := mustPlaceTempIn(t, parent, name, full[:cut])
				rep := mustRecover(t, dir)
				if len(rep) != 1 {
					t.Fatalf("cut %d: report %v", cut, rep)
				}
				rf := rep[0]
				want, keep := 0, headerEnd
				for i, e := range ends {
					if e <= cut {
						keep = e
						if packet[i] {
							want++
						}
					}
				}
				if cut < headerEnd {
					if !rf.Removed {
						t.Fatalf("cut %d inside the header: %v, want the file removed", cut, rf)
					}
					continue
				}
				if rf.Packets != uint64(want) || rf.CutBytes != int64(cut-keep) || rf.Path != filepath.Join(dir, name) {
					t.Fatalf("cut %d: %v; want %d packets, %d bytes cut", cut, rf, want, cut-keep)
				}
				res := mustRead(t, rf.Path)
				if diff := cmp.Diff(seqRange(0, want), res.seqs); diff != "" && want > 0 {
					t.Fatalf("cut %d: packets (-want +got):\n%s", cut, diff)
				}
				sc, err := ReadSidecar(rf.Path)
				if err != nil || !sc.Recovered || sc.Packets != uint64(want) {
					t.Fatalf("cut %d: sidecar %+v, %v", cut, sc, err)
				}
				if len(hiddenFiles(t, dir)) != 0 {
					t.Fatalf("cut %d: temporary file left", cut)
				}
				paths, wants = append(paths, rf.Path), append(wants, want)
			}
			mustCapinfosAll(t, paths, wants)
		})
	}
}

// mustCapinfosAll checks many files with one capinfos run.
func mustCapinfosAll(t *testing.T, paths []string, wants []int) {
	t.Helper()
	for len(paths) > 0 {
		n := min(len(paths), 200)
		out := mustRun(t, "capinfos", append([]string{"-M", "-c", "-T", "-r"}, paths[:n]...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != n {
			t.Fatalf("capinfos printed %d lines for %d files", len(lines), n)
		}
		for i, l := range lines {
			f := strings.Fields(l)
			if got := f[len(f)-1]; got != fmt.Sprint(wants[i]) {
				t.Errorf("capinfos counts %s packets in %s, want %d", got, paths[i], wants[i])
			}
		}
		paths, wants = paths[n:], wants[n:]
	}
}

// frameTable walks the frames of a compressed file.
func frameTable(t *testing.T, b []byte, comp Compression) (spans []frameSpan, content [][]byte) {
	t.Helper()
	var src frameSource
	if comp == CompressZstd {
		z, err := newZstdSource(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer z.close()
		src = z
	} else {
		src = newGzipSource(bytes.NewReader(b))
	}
	for {
		sp, c, err := src.next()
		if errors.Is(err, io.EOF) {
			return spans, content
		}
		if err != nil || !sp.complete {
			t.Fatalf("frame %d: %v", len(spans), err)
		}
		spans, content = append(spans, sp), append(content, bytes.Clone(c))
	}
}

// TestRecoverTornCompressed cuts zstd and gzip files at offsets across
// their frames. zstd keeps the complete frames (checksums verified);
// gzip keeps the complete members and the complete packets that decode
// from the torn one, re-compressed. zstd -t, gzip -t and capinfos accept
// every result.
func TestRecoverTornCompressed(t *testing.T) {
	for _, comp := range []Compression{CompressZstd, CompressGzip} {
		t.Run(comp.String(), func(t *testing.T) {
			full := mustCaptureBytes(t, Options{Compression: comp, FrameSize: MinFrameSize, frameAge: time.Hour}, 700)
			spans, content := frameTable(t, full, comp)
			if len(spans) < 4 {
				t.Fatalf("%d frames, want several", len(spans))
			}
			plain := bytes.Join(content, nil)
			_, ends, packet := blockEnds(t, plain)
			packetsBefore := func(u int64) int {
				n := 0
				for i, e := range ends {
					if int64(e) <= u && packet[i] {
						n++
					}
				}
				return n
			}
			name := "eth0-x-0.pcapng" + comp.Ext()
			parent := fastTempDir(t)
			var paths []string
			var wants []int
			for _, sp := range spans[1:] {
				for _, cut := range []int64{sp.cStart, sp.cStart + 1, sp.cStart + 20, (sp.cStart + sp.cEnd) / 2, sp.cEnd - 1, sp.cEnd} {
					dir := mustPlaceTempIn(t, parent, name, full[:cut])
					rf := mustRecover(t, dir)[0]
					kept := 0
					for _, s := range spans {
						if s.cEnd <= cut {
							kept = packetsBefore(s.uEnd)
						}
					}
					switch {
					case comp == CompressZstd && rf.Packets != uint64(kept):
						t.Errorf("zstd cut at %d: %d packets kept, want the %d of the complete frames", cut, rf.Packets, kept)
					case comp == CompressGzip && rf.Packets < uint64(kept):
						t.Errorf("gzip cut at %d: %d packets kept, want at least the %d of the complete members", cut, rf.Packets, kept)
					}
					res := mustRead(t, rf.Path)
					if diff := cmp.Diff(seqRange(0, int(rf.Packets)), res.seqs); diff != "" {
						t.Errorf("cut %d: packets (-want +got):\n%s", cut, diff)
					}
					if comp == CompressZstd {
						mustRun(t, "zstd", "-t", "-q", rf.Path)
					} else {
						mustRun(t, "gzip", "-t", rf.Path)
					}
					paths, wants = append(paths, rf.Path), append(wants, int(rf.Packets))
				}
			}
			mustCapinfosAll(t, paths, wants)
		})
	}
}

func TestRecoverZeroedTail(t *testing.T) {
	// After a power loss a file may end in zeros where the data never
	// reached the disk.
	for _, format := range []pcapio.Format{pcapio.FormatPCAPNG, pcapio.FormatPCAP} {
		t.Run(format.String(), func(t *testing.T) {
			full := mustCaptureBytes(t, Options{Format: format}, 20)
			_, ends, _ := blockEnds(t, full)
			torn := append(bytes.Clone(full[:ends[9]]), make([]byte, 4096)...)
			dir := mustPlaceTemp(t, "x."+format.String(), torn)
			rf := mustRecover(t, dir)[0]
			if rf.Packets != 10 || rf.CutBytes != 4096 {
				t.Fatalf("%v, want 10 packets and the zeros cut", rf)
			}
			if n := capinfosPackets(t, rf.Path); n != 10 {
				t.Fatalf("capinfos counts %d packets", n)
			}
		})
	}
}

func TestRecoverLeavesOthersAlone(t *testing.T) {
	dir := t.TempDir()
	// A live recorder's file is locked.
	r := mustRecorder(t, Options{Dir: dir, now: newClock().Now})
	mustWritePackets(t, r, 0, 5, t0.UnixNano(), time.Millisecond)
	r.Flush()
	// Not a capture file.
	if err := os.WriteFile(filepath.Join(dir, ".notes.txt.part"), []byte("hello world"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := mustRecover(t, dir)
	if len(rep) != 2 {
		t.Fatalf("report %v", rep)
	}
	for _, rf := range rep {
		if rf.Skipped == "" {
			t.Errorf("%v: want it left alone", rf)
		}
	}
	mustClose(t, r)
	if got := len(dataFiles(t, dir)); got != 1 {
		t.Errorf("%d files after the live recorder closed, want 1", got)
	}
}

func TestRecoverNameTaken(t *testing.T) {
	full := mustCaptureBytes(t, Options{}, 5)
	dir := mustPlaceTemp(t, "x.pcapng", full[:len(full)-3])
	if err := os.WriteFile(filepath.Join(dir, "x.pcapng"), []byte("older"), 0o644); err != nil {
		t.Fatal(err)
	}
	rf := mustRecover(t, dir)[0]
	if want := filepath.Join(dir, "x.recovered.pcapng"); rf.Path != want {
		t.Fatalf("recovered to %s, want %s", rf.Path, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x.pcapng")); string(b) != "older" {
		t.Errorf("recovery overwrote an existing file")
	}
}

// TestRecorderRecoversAtStart leaves a torn file as a crash would, then
// starts a Recorder in the same directory: it recovers the file, reports
// it and hands it to OnFinish.
func TestRecorderRecoversAtStart(t *testing.T) {
	for _, file := range []bool{false, true} {
		t.Run(fmt.Sprintf("file mode %v", file), func(t *testing.T) {
			full := mustCaptureBytes(t, Options{}, 30)
			name := "eth0-20261201T095959.000000000Z-4.pcapng"
			if file {
				name = "ringtap.pcapng"
			}
			dir := mustPlaceTemp(t, name, full[:len(full)-100])
			var got []FinishedFile
			o := Options{Dir: dir, OnFinish: func(f FinishedFile) { got = append(got, f) }, now: newClock().Now}
			if file {
				o = Options{File: filepath.Join(dir, name), OnFinish: o.OnFinish, now: o.now}
			}
			r := mustRecorder(t, o)
			rep := r.Recovered()
			if len(rep) != 1 || rep[0].Packets == 0 || len(got) != 1 || !got[0].Recovered || got[0].Path != rep[0].Path {
				t.Fatalf("report %v, OnFinish %v", rep, got)
			}
			want := filepath.Join(dir, name)
			if file {
				// The recorder writes that name again: the recovered
				// file takes a name of its own.
				want = filepath.Join(dir, "ringtap.recovered.pcapng")
			}
			if rep[0].Path != want {
				t.Errorf("recovered to %s, want %s", rep[0].Path, want)
			}
			mustWritePackets(t, r, 0, 3, t0.UnixNano(), time.Millisecond)
			mustClose(t, r)
			if s := r.Stats(); s.RecoveredFiles != 1 || s.FilesWritten != 2 {
				t.Errorf("stats %+v", s)
			}
			if n := capinfosPackets(t, want); n != int(rep[0].Packets) {
				t.Errorf("capinfos counts %d packets in the recovered file, want %d", n, rep[0].Packets)
			}
		})
	}
}
