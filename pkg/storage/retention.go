package storage

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// retention keeps a Recorder's directory within its limits: FileCount,
// MaxBytes, MaxAge and MinFree. It considers only finished files whose
// names the Recorder's namer produces (and their sidecars), oldest first
// by the end time in the sidecar (the file's mtime without one). Pinned
// files are kept, except when deleting them is the only way to restore
// MinFree.
type retention struct {
	r     *Recorder
	trig  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	cache map[string]retEntry
	warn  bool // the free space could not be restored: said so once
}

// retEntry is one finished file.
type retEntry struct {
	rel     string
	path    string
	size    int64
	alloc   int64
	mtime   time.Time
	key     time.Time
	sidecar bool
}

func newRetention(r *Recorder) *retention {
	t := &retention{r: r, trig: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), cache: map[string]retEntry{}}
	o := &r.opts
	if o.FileCount == 0 && o.MaxBytes == 0 && o.MaxAge == 0 && o.MinFree.IsZero() {
		close(t.done)
		return t
	}
	go t.run()
	return t
}

// active says whether any limit is set.
func (t *retention) active() bool {
	o := &t.r.opts
	return o.FileCount > 0 || o.MaxBytes > 0 || o.MaxAge > 0 || !o.MinFree.IsZero()
}

// trigger asks for a pass soon; it never blocks.
func (t *retention) trigger() {
	select {
	case t.trig <- struct{}{}:
	default:
	}
}

// close runs a last pass and stops.
func (t *retention) close() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}

func (t *retention) run() {
	defer close(t.done)
	tick := time.NewTicker(t.r.opts.RetentionInterval)
	defer tick.Stop()
	t.pass()
	for {
		select {
		case <-t.stop:
			t.pass()
			return
		case <-t.trig:
		case <-tick.C:
		}
		t.pass()
	}
}

// pass deletes files until the limits hold.
func (t *retention) pass() {
	if !t.active() {
		return
	}
	r, o := t.r, &t.r.opts
	r.finishMu.Lock()
	defer r.finishMu.Unlock()
	files, err := t.scan()
	if err != nil {
		r.log.Error("retention: list the output directory", "dir", r.root, "error", err)
		return
	}
	slices.SortFunc(files, func(a, b retEntry) int {
		return cmp.Or(a.key.Compare(b.key), strings.Compare(a.rel, b.rel))
	})
	var bytes int64
	for _, e := range files {
		bytes += e.size
	}
	count := len(files)
	var avail, minFree int64
	if !o.MinFree.IsZero() {
		a, total, err := o.space(r.root)
		if err != nil {
			r.log.Error("retention: read free disk space", "dir", r.root, "error", err)
		} else {
			avail, minFree = a, o.MinFree.Of(total)
		}
	}
	now := o.now()
	global := func() bool {
		return o.FileCount > 0 && count > o.FileCount || o.MaxBytes > 0 && bytes > o.MaxBytes || avail < minFree
	}
	expired := func(e retEntry) bool { return o.MaxAge > 0 && now.Sub(e.key) > o.MaxAge }
	deleted := map[string]bool{}
	del := func(e retEntry, pinned bool) {
		if !t.remove(e) {
			return
		}
		deleted[e.rel] = true
		count--
		bytes -= e.size
		avail += e.alloc
		r.counters.retFiles.Add(1)
		r.counters.retBytes.Add(uint64(e.size))
		if pinned {
			r.counters.retLosses.Add(1)
			r.log.Error("retention deleted a file still waiting for export: the disk would fill otherwise", "file", e.path, "bytes", e.size)
		}
	}
	isPinned := func(e retEntry) bool { return o.Pinned != nil && o.Pinned(e.path) }
	var pinned []retEntry
	for _, e := range files {
		if !global() && !expired(e) {
			break // later files are newer: none is expired
		}
		if isPinned(e) {
			pinned = append(pinned, e)
			continue
		}
		del(e, false)
	}
	if avail < minFree {
		var room int64
		for _, e := range pinned {
			room += e.alloc
		}
		if avail+room < minFree {
			if !t.warn {
				t.warn = true
				r.log.Error("retention: the minimum free space cannot be restored by deleting this recorder's files; keeping the files waiting for export",
					"dir", r.root, "available", avail, "wanted", minFree)
			}
		} else {
			for _, e := range pinned {
				if avail >= minFree {
					break
				}
				del(e, true)
			}
		}
	} else {
		t.warn = false
	}
	dirs := map[string]bool{}
	for rel := range deleted {
		dirs[path.Dir(rel)] = true
	}
	for d := range dirs {
		full := filepath.Join(r.root, filepath.FromSlash(d))
		if d != "." {
			// Remove the directories the template made, once empty.
			for x := d; x != "."; x = path.Dir(x) {
				if os.Remove(filepath.Join(r.root, filepath.FromSlash(x))) != nil {
					break
				}
			}
		}
		if err := syncDir(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("retention: sync directory", "dir", full, "error", err)
		}
	}
}

// remove deletes a file and its sidecar.
func (t *retention) remove(e retEntry) bool {
	if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.r.log.Error("retention: delete file", "file", e.path, "error", err)
		return false
	}
	if err := os.Remove(sidecarName(e.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.r.log.Warn("retention: delete sidecar", "file", sidecarName(e.path), "error", err)
	}
	delete(t.cache, e.rel)
	return true
}

// scan lists the finished files of the recorder's naming, and deletes
// sidecars left without their file.
func (t *retention) scan() ([]retEntry, error) {
	r := t.r
	var files []retEntry
	sidecars := map[string]bool{}
	seen := map[string]bool{}
	visit := func(rel string, d fs.DirEntry) {
		if !d.Type().IsRegular() {
			return
		}
		if data, ok := strings.CutSuffix(rel, sidecarSuffix); ok && r.namer.match(data) {
			sidecars[data] = true
			return
		}
		if !r.namer.match(rel) {
			return
		}
		fi, err := d.Info()
		if err != nil {
			return // gone meanwhile
		}
		e := retEntry{rel: rel, path: filepath.Join(r.root, filepath.FromSlash(rel)), size: fi.Size(), alloc: allocated(fi), mtime: fi.ModTime()}
		files = append(files, e)
		seen[rel] = true
	}
	if r.namer.nested() {
		err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == r.root {
					return err
				}
				return nil
			}
			if d.IsDir() {
				if p != r.root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			rel, err := filepath.Rel(r.root, p)
			if err == nil {
				visit(filepath.ToSlash(rel), d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	} else {
		ents, err := os.ReadDir(r.root)
		if err != nil {
			return nil, err
		}
		for _, d := range ents {
			visit(d.Name(), d)
		}
	}
	for i := range files {
		e := &files[i]
		e.sidecar = sidecars[e.rel]
		if c, ok := t.cache[e.rel]; ok && c.size == e.size && c.mtime.Equal(e.mtime) && c.sidecar == e.sidecar {
			e.key = c.key
			continue
		}
		e.key = e.mtime
		if e.sidecar {
			if ff, err := ReadSidecar(e.path); err == nil && !ff.End.IsZero() {
				e.key = ff.End
			}
		}
		t.cache[e.rel] = *e
	}
	for rel := range t.cache {
		if !seen[rel] {
			delete(t.cache, rel)
		}
	}
	for data := range sidecars {
		if seen[data] {
			continue
		}
		full := filepath.Join(r.root, filepath.FromSlash(data))
		if _, err := os.Stat(filepath.Join(r.root, filepath.FromSlash(tempName(data)))); err == nil {
			continue // being recovered or finished
		}
		os.Remove(sidecarName(full))
	}
	return files, nil
}
