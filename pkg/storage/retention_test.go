package storage

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeDisk is a file system of a fixed size whose only content is the
// directory's files, for Options.space.
func fakeDisk(capacity int64) func(string) (int64, int64, error) {
	return func(dir string) (int64, int64, error) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return 0, 0, err
		}
		used := int64(0)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				used += fi.Size()
			}
		}
		return capacity - used, capacity, nil
	}
}

// pins is a set of pinned files, like the exporter's spool.
type pins struct {
	mu sync.Mutex
	m  map[string]bool
}

func (p *pins) pinned(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[path]
}

func (p *pins) set(path string, v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]bool{}
	}
	p.m[path] = v
}

func sizes(t *testing.T, files []string) (total int64, each []int64) {
	t.Helper()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		each = append(each, fi.Size())
	}
	return total, each
}

// foreign puts files in dir that retention must never delete.
func foreign(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"notes.txt", "eth1-20261201T100000.000000000Z-0.pcapng", "eth0-20261201T100000.000000000Z-0.pcap",
		"eth0-yesterday-0.pcapng", "eth0-20261201T100000.000000000Z-0.pcapng.bak", ".hidden"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, 50_000), 0o644); err != nil {
			t.Fatal(err)
		}
		old := t0.Add(-365 * 24 * time.Hour)
		os.Chtimes(p, old, old)
		out = append(out, p)
	}
	return out
}

func checkForeign(t *testing.T, files []string) {
	t.Helper()
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("retention touched a file that is not its own: %v", err)
		}
	}
}

func TestRetentionMaxBytes(t *testing.T) {
	dir := t.TempDir()
	others := foreign(t, dir)
	const limit = 200_000
	r := mustRecorder(t, Options{Dir: dir, FileSize: 30_000, MaxBytes: limit, now: newClock().Now})
	mustWritePackets(t, r, 0, 2000, t0.UnixNano(), time.Millisecond)
	mustClose(t, r)
	checkForeign(t, others)
	files := bySeq(dataFiles(t, dir)[:0])
	for _, f := range dataFiles(t, dir) {
		if r.namer.match(filepath.Base(f)) {
			files = append(files, f)
		}
	}
	files = bySeq(files)
	total, _ := sizes(t, files)
	s := r.Stats()
	if total > limit {
		t.Errorf("%d bytes kept, limit %d", total, limit)
	}
	// Not more deleted than needed: one more file (about 30 KB) would
	// exceed the limit.
	if total+20_000 <= limit {
		t.Errorf("%d bytes kept: retention deleted more than needed for %d", total, limit)
	}
	all, _ := concatSeqs(t, files)
	if all[len(all)-1] != 1999 || s.RetentionDeletedFiles != s.FilesWritten-uint64(len(files)) {
		t.Errorf("kept %d files ending at packet %d, stats %+v: want the newest", len(files), all[len(all)-1], s)
	}
	if s.RetentionDeletedBytes == 0 || s.RetentionLosses != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestRetentionKeepsPinnedFiles(t *testing.T) {
	dir := t.TempDir()
	others := foreign(t, dir)
	var p pins
	var mu sync.Mutex
	var finished []string
	const limit = 200_000
	r := mustRecorder(t, Options{Dir: dir, FileSize: 30_000, MaxBytes: limit, MaxAge: time.Hour, Pinned: p.pinned, now: newClock().Now,
		OnFinish: func(f FinishedFile) {
			// Every third file waits for export; the others are
			// exported at once.
			p.set(f.Path, f.Seq%3 == 0)
			mu.Lock()
			finished = append(finished, f.Path)
			mu.Unlock()
		}})
	mustWritePackets(t, r, 0, 2000, t0.UnixNano(), time.Millisecond)
	mustClose(t, r)
	checkForeign(t, others)
	s := r.Stats()
	if s.RetentionLosses != 0 {
		t.Errorf("%d pinned files lost with room to spare", s.RetentionLosses)
	}
	var unpinnedKept int64
	for _, f := range finished {
		_, err := os.Stat(f)
		switch {
		case p.pinned(f) && err != nil:
			t.Errorf("pinned %s was deleted: %v", filepath.Base(f), err)
		case !p.pinned(f) && err == nil:
			fi, _ := os.Stat(f)
			unpinnedKept += fi.Size()
		}
	}
	var kept []string
	for _, f := range dataFiles(t, dir) {
		if r.namer.match(filepath.Base(f)) {
			kept = append(kept, f)
		}
	}
	total, _ := sizes(t, kept)
	if total > limit && unpinnedKept > 0 {
		t.Errorf("%d bytes kept (%d of them not pinned) above the %d limit", total, unpinnedKept, limit)
	}
	// Exported at last: the next pass brings the directory within the
	// limit.
	for _, f := range finished {
		p.set(f, false)
	}
	r2 := mustRecorder(t, Options{Dir: dir, FileSize: 30_000, MaxBytes: limit, Pinned: p.pinned, now: newClock().Now})
	mustClose(t, r2)
	kept = kept[:0]
	for _, f := range dataFiles(t, dir) {
		if r.namer.match(filepath.Base(f)) {
			kept = append(kept, f)
		}
	}
	if total, _ := sizes(t, kept); total > limit {
		t.Errorf("after export: %d bytes kept, limit %d", total, limit)
	}
	checkForeign(t, others)
}

func TestRetentionMinFree(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pinAll     bool
		wantLosses bool
	}{
		{"unpinned files make room", false, false},
		{"only pinned files left", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const capacity = 1_000_000
			var p pins
			r := mustRecorder(t, Options{Dir: dir, FileSize: 30_000, MinFree: Space{Percent: 40}, Pinned: p.pinned, space: fakeDisk(capacity), now: newClock().Now,
				// Without pinAll, every sixth file waits for export: they
				// fit the disk, the others make room.
				OnFinish: func(f FinishedFile) { p.set(f.Path, tc.pinAll || f.Seq%6 == 0) }})
			mustWritePackets(t, r, 0, 4000, t0.UnixNano(), time.Millisecond)
			mustClose(t, r)
			avail, _, _ := fakeDisk(capacity)(dir)
			s := r.Stats()
			if avail < capacity*40/100 {
				t.Errorf("%d bytes free, want at least 40%% of %d", avail, capacity)
			}
			if avail > capacity*40/100+60_000 {
				t.Errorf("%d bytes free: deleted more than a file beyond the 40%% of %d", avail, capacity)
			}
			if got := s.RetentionLosses > 0; got != tc.wantLosses {
				t.Errorf("stats %+v: losses %v, want %v", s, got, tc.wantLosses)
			}
			if !tc.pinAll {
				for path, pinned := range p.m {
					if _, err := os.Stat(path); pinned && err != nil {
						t.Errorf("pinned %s deleted with room to spare", filepath.Base(path))
					}
				}
			}
		})
	}
}

func TestRetentionMaxAge(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	r := mustRecorder(t, Options{Dir: dir, FileAge: 10 * time.Second, MaxAge: 30 * time.Second, RetentionInterval: time.Hour, now: clock.Now})
	for i := range 100 {
		ts := t0.Add(time.Duration(i) * time.Second)
		clock.Set(ts)
		if err := r.WritePacket(seqPacket(i, ts.UnixNano())); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(t0.Add(100 * time.Second))
	mustClose(t, r)
	var ends []time.Time
	for _, f := range dataFiles(t, dir) {
		ff, err := ReadSidecar(f)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, ff.End)
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	if len(ends) == 0 || ends[0].Before(t0.Add(70*time.Second)) {
		t.Errorf("file ends %v: want none older than 30 s at t0+100s", ends)
	}
	if len(ends) != 4 { // ending at 70, 80, 90 and 100 s
		t.Errorf("%d files kept, want 4: %v", len(ends), ends)
	}
}
