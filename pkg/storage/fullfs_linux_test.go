package storage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// mustTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it at cleanup.
func mustTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testbedtest.SkipOrFail(t, "mounting a small file system needs root (euid %d)", os.Geteuid())
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+itoa(size)); err != nil {
		testbedtest.SkipOrFail(t, "mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestFullFileSystem writes into a 1 MiB file system until it is full:
// the recorder keeps running and counts what it cannot write, every
// finished file is valid, and writing resumes once space is freed.
func TestFullFileSystem(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			mnt := mustTmpfs(t, 1<<20)
			filler := filepath.Join(mnt, "filler")
			if err := os.WriteFile(filler, make([]byte, 400<<10), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(mnt, "captures")
			r := mustRecorder(t, Options{Dir: dir, Compression: comp, FileSize: 100_000, FrameSize: MinFrameSize, chunkSize: 16 << 10,
				resumeBackoff: 20 * time.Millisecond})
			n := 0
			write := func(k int) {
				for range k {
					// Random-looking data, so that zstd cannot shrink it
					// below the disk.
					p := seqPacket(n, time.Now().UnixNano())
					for i := 22; i < len(p.Data); i++ {
						p.Data[i] = byte(uint32(n*7919+i*104729) >> 7)
					}
					if err := r.WritePacket(p); err != nil {
						t.Fatalf("WritePacket on a full disk: %v", err)
					}
					n++
					if n%50 == 0 {
						r.Flush()
						time.Sleep(time.Millisecond)
					}
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for r.Stats().WriteErrors == 0 && time.Now().Before(deadline) {
				write(500)
			}
			write(2000) // keeps running on a full disk
			full := r.Stats()
			if full.WriteErrors == 0 || full.WriteDrops == 0 {
				t.Fatalf("stats %+v: the disk never filled", full)
			}
			for _, f := range dataFiles(t, dir) {
				res := mustRead(t, f)
				if c := capinfosPackets(t, f); c != len(res.seqs) {
					t.Errorf("capinfos counts %d packets in %s, want %d", c, f, len(res.seqs))
				}
			}
			// Free space: writing resumes in a new file.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			before := r.Stats().PacketsWritten
			// Within the backoff, writing starts again on its own.
			deadline = time.Now().Add(5 * time.Second)
			for r.Stats().PacketsWritten < before+100 && time.Now().Before(deadline) {
				write(50)
				time.Sleep(5 * time.Millisecond)
			}
			write(300)
			mustClose(t, r)
			s := r.Stats()
			checkAccounted(t, r, n)
			if s.PacketsWritten < before+300 {
				t.Errorf("%d packets written after space returned, want at least 300 (stats %+v)", s.PacketsWritten-before, s)
			}
			var total uint64
			var last int
			for _, f := range bySeq(dataFiles(t, dir)) {
				res := mustRead(t, f)
				if c := capinfosPackets(t, f); c != len(res.seqs) {
					t.Errorf("capinfos counts %d packets in %s, want %d", c, f, len(res.seqs))
				}
				total += uint64(len(res.seqs))
				if len(res.seqs) > 0 {
					last = res.seqs[len(res.seqs)-1]
				}
			}
			if total != s.PacketsWritten || last != n-1 {
				t.Errorf("files hold %d packets ending with %d; stats say %d, last written %d", total, last, s.PacketsWritten, n-1)
			}
			if hidden := hiddenFiles(t, dir); len(hidden) != 0 {
				t.Errorf("temporary files left: %v", hidden)
			}
		})
	}
}
