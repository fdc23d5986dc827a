package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// seqRange is first..first+n-1.
func seqRange(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

// concatSeqs reads files in order and joins their packet numbers.
func concatSeqs(t *testing.T, files []string) (all []int, per []int) {
	t.Helper()
	for _, f := range files {
		res := mustRead(t, f)
		all = append(all, res.seqs...)
		per = append(per, len(res.seqs))
	}
	return all, per
}

func TestRotationBySize(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format pcapio.Format
		comp   Compression
	}{
		{"pcapng", pcapio.FormatPCAPNG, CompressNone},
		{"pcap", pcapio.FormatPCAP, CompressNone},
		{"pcapng zstd", pcapio.FormatPCAPNG, CompressZstd},
		{"pcap gzip", pcapio.FormatPCAP, CompressGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const limit, n = 50_000, 800
			r := mustRecorder(t, Options{Dir: dir, Format: tc.format, Compression: tc.comp, FileSize: limit, now: newClock().Now})
			mustWritePackets(t, r, 0, n, t0.UnixNano(), time.Millisecond)
			mustClose(t, r)
			files := bySeq(dataFiles(t, dir))
			if len(files) < 6 {
				t.Fatalf("%d files, want at least 6 at %d bytes each", len(files), limit)
			}
			for _, f := range files {
				if tc.comp == CompressNone {
					if fi, _ := os.Stat(f); fi.Size() > limit {
						t.Errorf("%s has %d bytes, above the %d limit", f, fi.Size(), limit)
					}
				} else if n := len(decompressed(t, f)); n > limit {
					t.Errorf("%s holds %d bytes uncompressed, above the %d limit", f, n, limit)
				}
				if !strings.HasSuffix(f, tc.format.String()+tc.comp.Ext()) && !(tc.comp == CompressNone && strings.HasSuffix(f, "."+tc.format.String())) {
					t.Errorf("%s: want extension .%s%s", f, tc.format, tc.comp.Ext())
				}
			}
			all, _ := concatSeqs(t, files)
			if diff := cmp.Diff(seqRange(0, n), all); diff != "" {
				t.Errorf("packets across files (-want +got):\n%s", diff)
			}
			s := r.Stats()
			if s.Rotations != uint64(len(files)-1) || s.FilesWritten != uint64(len(files)) || s.PacketsWritten != n || s.WriteDrops != 0 {
				t.Errorf("stats %+v for %d files", s, len(files))
			}
			if hidden := hiddenFiles(t, dir); len(hidden) != 0 {
				t.Errorf("temporary files left: %v", hidden)
			}
		})
	}
}

func TestRotationByTime(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	r := mustRecorder(t, Options{Dir: dir, FileAge: 10 * time.Second, now: clock.Now})
	// One packet a second from t0: files of 10, 10, 10 and 5 packets.
	mustWritePackets(t, r, 0, 35, t0.UnixNano(), time.Second)
	clock.Set(t0.Add(35 * time.Second))
	mustClose(t, r)
	files := bySeq(dataFiles(t, dir))
	all, per := concatSeqs(t, files)
	if diff := cmp.Diff([]int{10, 10, 10, 5}, per); diff != "" {
		t.Errorf("packets per file (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seqRange(0, 35), all); diff != "" {
		t.Errorf("packets (-want +got):\n%s", diff)
	}
	// The names carry each file's start: t0, then the packets that
	// crossed each deadline.
	for i, f := range files {
		want := fmt.Sprintf("eth0-%s-%d.pcapng", t0.Add(time.Duration(i)*10*time.Second).Format(defaultLayout), i)
		if filepath.Base(f) != want {
			t.Errorf("file %d is %s, want %s", i, filepath.Base(f), want)
		}
	}
}

func TestRotationByTimeWhenIdle(t *testing.T) {
	dir := t.TempDir()
	r := mustRecorder(t, Options{Dir: dir, FileAge: 30 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().FilesWritten < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mustClose(t, r)
	files := dataFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d files after idling through several rotations, want at least 3", len(files))
	}
	for _, f := range files {
		if n := capinfosPackets(t, f); n != 0 {
			t.Errorf("%s: %d packets, want 0", f, n)
		}
	}
}

func TestFileCountRing(t *testing.T) {
	dir := t.TempDir()
	r := mustRecorder(t, Options{Dir: dir, FileSize: 20_000, FileCount: 3, now: newClock().Now})
	mustWritePackets(t, r, 0, 300, t0.UnixNano(), time.Millisecond)
	mustClose(t, r)
	s := r.Stats()
	files := bySeq(dataFiles(t, dir))
	if len(files) != 3 {
		t.Fatalf("%d files kept, want 3: %v", len(files), files)
	}
	all, _ := concatSeqs(t, files)
	if all[len(all)-1] != 299 || s.RetentionDeletedFiles != s.FilesWritten-3 {
		t.Errorf("kept packets %d..%d, stats %+v: want the newest files", all[0], all[len(all)-1], s)
	}
	for _, f := range files {
		if _, err := os.Stat(sidecarName(f)); err != nil {
			t.Errorf("sidecar of a kept file: %v", err)
		}
	}
	if side, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(side) != 3 {
		t.Errorf("%d sidecars, want 3 (deleted with their files)", len(side))
	}
}

func TestFileModeNumbering(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count int
		want  []string
	}{
		// tcpdump -C: the first file has no number, then 1, 2, ...
		{"-C", 0, []string{"x.pcap", "x.pcap1", "x.pcap2", "x.pcap3"}},
		// tcpdump -C -W 3: every file numbered, coming round again.
		{"-C -W 3", 3, []string{"x.pcap0", "x.pcap1", "x.pcap2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := mustRecorder(t, Options{File: filepath.Join(dir, "x.pcap"), Format: pcapio.FormatPCAP, FileSize: 20_000, FileCount: tc.count, now: newClock().Now})
			mustWritePackets(t, r, 0, 150, t0.UnixNano(), time.Millisecond)
			mustClose(t, r)
			if got := r.Stats().FilesWritten; got != 4 {
				t.Fatalf("%d files written, want 4 (the test's sizes changed?)", got)
			}
			var names []string
			for _, f := range dataFiles(t, dir) {
				names = append(names, filepath.Base(f))
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			var total int
			for _, f := range dataFiles(t, dir) {
				total += capinfosPackets(t, f)
			}
			if tc.count == 0 && total != 150 {
				t.Errorf("%d packets in the files, want 150", total)
			}
			if tc.count > 0 {
				// The ring holds the newest files: the last packet is in
				// the file last written.
				last := mustRead(t, filepath.Join(dir, fmt.Sprintf("x.pcap%d", (r.Stats().FilesWritten-1)%3)))
				if last.seqs[len(last.seqs)-1] != 149 {
					t.Errorf("newest file ends with packet %d, want 149", last.seqs[len(last.seqs)-1])
				}
			}
		})
	}
}

func TestSingleFileReplacesOnlyWhenComplete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ringtap.pcapng")
	if err := os.WriteFile(path, []byte("yesterday"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRecorder(t, Options{File: path, now: newClock().Now})
	mustWritePackets(t, r, 0, 10, t0.UnixNano(), time.Millisecond)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "yesterday" {
		t.Fatalf("the previous file changed before the new one was complete")
	}
	mustClose(t, r)
	if n := capinfosPackets(t, path); n != 10 {
		t.Fatalf("%d packets, want 10", n)
	}
	if got := dataFiles(t, dir); len(got) != 1 {
		t.Fatalf("files %v, want one", got)
	}
}

// cumulative is a capture's counters for a Stats callback.
type cumulative struct{ n atomic.Uint64 }

func (c *cumulative) stats() []pcapio.InterfaceStats {
	n := c.n.Load()
	return []pcapio.InterfaceStats{
		{Received: 3 * n, Dropped: n / 10, Accepted: 2 * n},
		{Received: n, Accepted: n},
	}
}

func TestStatisticsPerFile(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	var cum cumulative
	ifaces := []pcapio.Interface{{Name: "eth0", LinkType: 1, SnapLen: 65535}, {Name: "eth1", LinkType: 1, SnapLen: 65535}}
	r := mustRecorder(t, Options{Dir: dir, Interfaces: ifaces, FileAge: 10 * time.Second, Stats: cum.stats, now: clock.Now})
	const n = 45
	for i := range n {
		ts := t0.Add(time.Duration(i) * time.Second)
		clock.Set(ts)
		cum.n.Add(1)
		p := seqPacket(i, ts.UnixNano())
		p.Interface = i % 2
		if err := r.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	// Run's last call: the final cumulative counters.
	end := t0.Add(n * time.Second)
	clock.Set(end)
	for i, s := range cum.stats() {
		s.Timestamp = end.UnixNano()
		if err := r.WriteInterfaceStats(i, s); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, r)
	files := bySeq(dataFiles(t, dir))
	var sum [2]pcapio.InterfaceStats
	var packets int
	prevEnd := t0.UnixNano()
	for i, f := range files {
		res := mustRead(t, f)
		packets += len(res.seqs)
		if i == 0 { // tshark takes 2 s to start: once
			if got := tsharkPackets(t, f); got != len(res.seqs) {
				t.Errorf("%s: tshark reads %d packets, we read %d", f, got, len(res.seqs))
			}
		}
		if got := capinfosPackets(t, f); got != len(res.seqs) {
			t.Errorf("%s: capinfos counts %d packets, we read %d", f, got, len(res.seqs))
		}
		if len(res.stats) != 2 {
			t.Fatalf("%s: statistics for %d interfaces, want 2", f, len(res.stats))
		}
		for i := range 2 {
			s := res.stats[i]
			if s.StartTime != prevEnd || s.EndTime <= s.StartTime || s.Timestamp != s.EndTime {
				t.Errorf("%s interface %d: span %d..%d (at %d), want it to start at %d", f, i, s.StartTime, s.EndTime, s.Timestamp, prevEnd)
			}
			sum[i].Received += s.Received
			sum[i].Dropped += s.Dropped
			sum[i].Accepted += s.Accepted
		}
		prevEnd = res.stats[0].EndTime
	}
	if packets != n {
		t.Errorf("%d packets in all files, want %d", packets, n)
	}
	want := cum.stats()
	for i := range 2 {
		want[i].Timestamp = 0
		if diff := cmp.Diff(want[i], sum[i]); diff != "" {
			t.Errorf("interface %d: the files' statistics do not add up to the capture's (-want +got):\n%s", i, diff)
		}
	}
}

func TestSidecar(t *testing.T) {
	dir := t.TempDir()
	var finished []FinishedFile
	r := mustRecorder(t, Options{Dir: dir, Capture: "web", Compression: CompressGzip, FileSize: 30_000, now: newClock().Now,
		OnFinish: func(f FinishedFile) { finished = append(finished, f) }})
	// Packets from two CPUs interleave out of order by a little.
	for i := range 200 {
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		if i%2 == 1 {
			ts = ts.Add(-3 * time.Millisecond)
		}
		if err := r.WritePacket(seqPacket(i, ts.UnixNano())); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, r)
	files := dataFiles(t, dir)
	if len(finished) != len(files) || len(files) < 2 {
		t.Fatalf("OnFinish saw %d files, %d on disk", len(finished), len(files))
	}
	for _, f := range finished {
		sc, err := ReadSidecar(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(f, sc); diff != "" {
			t.Errorf("sidecar differs from OnFinish's file (-finish +sidecar):\n%s", diff)
		}
		res := mustRead(t, f.Path)
		lo, hi := slices.Min(res.ts), slices.Max(res.ts)
		fi, _ := os.Stat(f.Path)
		want := FinishedFile{
			Path: f.Path, Size: fi.Size(), Packets: uint64(len(res.seqs)), First: time.Unix(0, lo).UTC(), Last: time.Unix(0, hi).UTC(),
			Start: f.Start, End: f.End, Seq: f.Seq, Interfaces: []string{"eth0"}, Capture: "web", Compression: "gzip",
			Format: "pcapng", Sidecar: f.Path + ".json",
		}
		if diff := cmp.Diff(want, f); diff != "" {
			t.Errorf("finished file (-want +got):\n%s", diff)
		}
		if f.End.Before(f.Start) {
			t.Errorf("%s ends before it starts", f.Path)
		}
	}
}
