package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// RecoveredFile is one temporary file that recovery found: what it kept
// and under which name, or why it left the file alone.
type RecoveredFile struct {
	// FinishedFile is the recovered file under its final name (Path is
	// empty if nothing was kept).
	FinishedFile
	// Temp is the temporary file that was found.
	Temp string
	// CutBytes is how many bytes were cut from the end of the stored
	// (for compressed files, compressed) data: a torn block, record or
	// frame.
	CutBytes int64
	// RewrittenBytes is the size of a tail re-compressed from the part
	// of a torn gzip member that decoded to complete packets.
	RewrittenBytes int64
	// Removed: nothing complete was in the file (a torn header, or for
	// zstd no complete frame); the temporary file was deleted.
	Removed bool
	// Skipped says why the file was left as it is: in use by a running
	// capture, or not a capture file.
	Skipped string
	// Err is the error that stopped recovery of this file.
	Err error
}

// String is the one-line report of ringtap recover.
func (f RecoveredFile) String() string {
	switch {
	case f.Err != nil:
		return fmt.Sprintf("%s: not recovered: %v", f.Temp, f.Err)
	case f.Skipped != "":
		return fmt.Sprintf("%s: left alone: %s", f.Temp, f.Skipped)
	case f.Removed:
		return fmt.Sprintf("%s: removed: no complete packet data (%d bytes)", f.Temp, f.CutBytes)
	}
	s := fmt.Sprintf("%s: recovered %d packets, %d bytes cut", f.Path, f.Packets, f.CutBytes)
	if f.RewrittenBytes > 0 {
		s += fmt.Sprintf(", %d bytes of tail re-compressed", f.RewrittenBytes)
	}
	return s
}

// Recover finishes the temporary files that a crashed recorder left in
// dir and its subdirectories: hidden files named .NAME.part that start
// like a capture file and are not locked by a running capture. Each keeps
// every complete packet: a pcap or pcapng file is cut after its last
// complete block or record; a zstd file after its last complete frame
// whose checksum holds; a gzip file keeps its complete members and, of a
// torn last member, the complete packets that decode, re-compressed.
// Nothing that cannot be verified is kept. The file is synced, gets a
// sidecar (Recovered set, no statistics) and is renamed to NAME, or to
// NAME with ".recovered" before its extension if NAME exists. Stale
// sidecar temporaries are removed. The error is for dir itself; per-file
// problems are in the report.
func Recover(dir string, log *slog.Logger) ([]RecoveredFile, error) {
	if log == nil {
		log = slog.Default()
	}
	return recoverDir(dir, func(string) bool { return true }, false, true, log)
}

// staleAfter: a sidecar temporary older than this belongs to no live
// recorder (they write one in a moment).
const staleAfter = time.Minute

// recoverDir recovers the temporary files whose final names want
// accepts. With reuse, recovered files always take a ".recovered" name,
// because the recorder will write the final names again.
func recoverDir(root string, want func(string) bool, reuse, nested bool, log *slog.Logger) ([]RecoveredFile, error) {
	var temps []string
	visit := func(rel string, d fs.DirEntry) {
		if !d.Type().IsRegular() {
			return
		}
		final, ok := finalName(rel)
		if !ok {
			return
		}
		full := filepath.Join(root, filepath.FromSlash(rel))
		if data, isSidecar := strings.CutSuffix(final, sidecarSuffix); isSidecar {
			if fi, err := d.Info(); err == nil && want(data) && time.Since(fi.ModTime()) > staleAfter {
				os.Remove(full)
			}
			return
		}
		if want(final) {
			temps = append(temps, rel)
		}
	}
	if nested {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root {
					return err
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if rel, err := filepath.Rel(root, p); err == nil {
				visit(filepath.ToSlash(rel), d)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("look for torn files in %s: %w", root, err)
		}
	} else {
		ents, err := os.ReadDir(root)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("look for torn files in %s: %w", root, err)
		}
		for _, d := range ents {
			visit(d.Name(), d)
		}
	}
	var out []RecoveredFile
	for _, rel := range temps {
		final, _ := finalName(rel)
		rf := recoverFile(root, rel, final, reuse)
		switch {
		case rf.Err != nil:
			log.Error("recover torn capture file", "file", rf.Temp, "error", rf.Err)
		case rf.Skipped != "":
			log.Info("torn capture file left alone", "file", rf.Temp, "reason", rf.Skipped)
		case rf.Removed:
			log.Warn("torn capture file removed: no complete packet data", "file", rf.Temp, "bytes", rf.CutBytes)
		default:
			log.Warn("recovered torn capture file", "file", rf.Path, "packets", rf.Packets, "cut_bytes", rf.CutBytes, "rewritten_bytes", rf.RewrittenBytes)
		}
		out = append(out, rf)
	}
	return out, nil
}

// kinds of file recovery understands.
const (
	kindUnknown = iota
	kindPcap
	kindZstd
	kindGzip
)

func sniff(b []byte) int {
	switch {
	case len(b) >= 4 && binary.LittleEndian.Uint32(b) == magicZstd:
		return kindZstd
	case len(b) >= 2 && binary.LittleEndian.Uint16(b) == magicGzip:
		return kindGzip
	case len(b) >= 4:
		switch binary.LittleEndian.Uint32(b) {
		case 0x0a0d0d0a, 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
			return kindPcap
		}
	}
	return kindUnknown
}

// salvaged is what the pcap check found in an uncompressed stream.
type salvaged struct {
	header   bool
	format   pcapio.Format
	ifaces   []string
	packets  uint64
	min, max int64
	end      int64 // the valid prefix: complete blocks and plausible packets
}

// salvage reads a pcap or pcapng stream as far as it is valid.
func salvage(r io.Reader) salvaged {
	rd, err := pcapio.NewReader(r)
	if err != nil {
		return salvaged{}
	}
	s := salvaged{header: true, format: rd.Format(), end: rd.Offset()}
	var p pcapio.Packet
	for {
		prev := rd.Offset()
		err := rd.Next(&p)
		if err != nil {
			s.end = rd.Offset()
			break
		}
		// A zeroed tail (power loss) parses as empty records in
		// classic pcap; no writer of ours produces them.
		if p.WireLen == 0 || uint64(len(p.Data)) > uint64(p.WireLen) || p.Timestamp <= 0 {
			s.end = prev
			break
		}
		if s.packets == 0 || p.Timestamp < s.min {
			s.min = p.Timestamp
		}
		if s.packets == 0 || p.Timestamp > s.max {
			s.max = p.Timestamp
		}
		s.packets++
	}
	for _, ifc := range rd.Interfaces() {
		s.ifaces = append(s.ifaces, ifc.Name)
	}
	return s
}

// recoverFile recovers one temporary file.
func recoverFile(root, rel, final string, reuse bool) (rf RecoveredFile) {
	rf.Temp = filepath.Join(root, filepath.FromSlash(rel))
	fh, err := os.OpenFile(rf.Temp, os.O_RDWR, 0)
	if err != nil {
		rf.Err = err
		return rf
	}
	defer fh.Close()
	if err := lockFile(fh); err != nil {
		if errors.Is(err, errLocked) {
			rf.Skipped = errLocked.Error()
		} else {
			rf.Err = err
		}
		return rf
	}
	// The sidecar's temporary file is written while the data file is
	// locked: with the lock ours, its writer is gone.
	os.Remove(filepath.Join(root, filepath.FromSlash(tempName(sidecarName(final)))))
	fi, err := fh.Stat()
	if err != nil {
		rf.Err = err
		return rf
	}
	size := fi.Size()
	var head [4]byte
	n, _ := fh.ReadAt(head[:], 0)
	kind := sniff(head[:n])
	if kind == kindUnknown && size >= 4 {
		rf.Skipped = "does not start like a pcap, pcapng, zstd or gzip file"
		return rf
	}
	var (
		s    salvaged
		keep int64 // bytes of the file kept as they are
		tail []byte
	)
	switch kind {
	case kindPcap:
		s = salvage(io.NewSectionReader(fh, 0, size))
		keep = s.end
	case kindZstd, kindGzip:
		s, keep, tail, err = salvageCompressed(fh, size, kind)
		if err != nil {
			rf.Err = err
			return rf
		}
	}
	if !s.header {
		if err := os.Remove(rf.Temp); err != nil {
			rf.Err = err
			return rf
		}
		rf.Removed, rf.CutBytes = true, size
		return rf
	}
	if keep < size || tail != nil {
		if err := fh.Truncate(keep); err != nil {
			rf.Err = fmt.Errorf("cut torn tail: %w", err)
			return rf
		}
		if tail != nil {
			if _, err := fh.WriteAt(tail, keep); err != nil {
				rf.Err = fmt.Errorf("write re-compressed tail: %w", err)
				return rf
			}
		}
	}
	if err := fh.Sync(); err != nil {
		rf.Err = fmt.Errorf("sync: %w", err)
		return rf
	}
	rf.CutBytes, rf.RewrittenBytes = size-keep, int64(len(tail))
	taken := func(cand string) bool {
		_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(cand)))
		return err == nil
	}
	if reuse || taken(final) {
		final = recoveredName(final, taken)
	}
	ff := FinishedFile{
		Path: filepath.Join(root, filepath.FromSlash(final)), Size: keep + int64(len(tail)), Packets: s.packets,
		Interfaces: s.ifaces, Format: s.format.String(), Recovered: true, End: fi.ModTime().UTC(),
	}
	switch kind {
	case kindZstd:
		ff.Compression = "zstd"
	case kindGzip:
		ff.Compression = "gzip"
	}
	if s.packets > 0 {
		ff.First, ff.Last = time.Unix(0, s.min).UTC(), time.Unix(0, s.max).UTC()
		ff.End = ff.Last
	}
	dir := filepath.Dir(ff.Path)
	if sc, err := writeSidecar(ff); err == nil {
		ff.Sidecar = sc
	}
	if err := syncDir(dir); err != nil {
		rf.Err = fmt.Errorf("sync directory: %w", err)
		return rf
	}
	if err := os.Rename(rf.Temp, ff.Path); err != nil {
		rf.Err = fmt.Errorf("rename: %w", err)
		return rf
	}
	if err := syncDir(dir); err != nil {
		rf.Err = fmt.Errorf("sync directory: %w", err)
		return rf
	}
	rf.FinishedFile = ff
	return rf
}

// salvageCompressed checks a compressed file frame by frame: it keeps
// the frames whose content is valid pcap to their end and, when the
// valid data ends inside a frame, re-compresses that frame's valid part
// as the tail.
func salvageCompressed(fh *os.File, size int64, kind int) (s salvaged, keep int64, tail []byte, err error) {
	newSource := func(r io.Reader) (frameSource, func(), error) {
		if kind == kindZstd {
			z, err := newZstdSource(r)
			if err != nil {
				return nil, nil, err
			}
			return z, z.close, nil
		}
		return newGzipSource(r), func() {}, nil
	}
	src, done, err := newSource(io.NewSectionReader(fh, 0, size))
	if err != nil {
		return s, 0, nil, err
	}
	stream := &frameStream{src: src}
	s = salvage(stream)
	done()
	if !s.header {
		return s, 0, nil, nil
	}
	var last frameSpan // the last frame kept whole
	for _, sp := range stream.spans {
		if sp.uEnd > s.end || !sp.complete {
			// A torn member is never kept as it is: it has no end.
			if sp.uStart >= s.end {
				break
			}
			// The valid data ends inside this frame: re-compress its
			// valid part.
			again, done, err := newSource(io.NewSectionReader(fh, sp.cStart, sp.cEnd-sp.cStart))
			if err != nil {
				return s, 0, nil, err
			}
			_, b, err := again.next()
			done()
			if err != nil || int64(len(b)) < s.end-sp.uStart {
				return s, 0, nil, fmt.Errorf("decode frame at byte %d again: %w", sp.cStart, err)
			}
			if tail, err = again.encode(b[:s.end-sp.uStart]); err != nil {
				return s, 0, nil, err
			}
			return s, last.cEnd, tail, nil
		}
		last = sp
	}
	return s, last.cEnd, nil, nil
}
