package export

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The spool is a directory with one entry file per pending upload:
//
//	DIR/.lock            flock'ed by the exporter that owns the spool
//	DIR/<id>.json        an entry; id is the first 128 bits of sha256(key)
//	DIR/.<id>.*.tmp      an entry being written (left over by a crash)
//	DIR/<id>.json.bad    an entry that did not parse, set aside
//
// An entry is written to a temporary name, synced, renamed over its final
// name and the directory is synced; it is removed (and the directory
// synced) only after the store confirmed the object. A rename is atomic,
// so after a crash an entry is either whole or absent, and absent only if
// Enqueue had not returned. Each entry stands alone: no journal to replay
// or compact, no torn tail to repair, and an operator can read (cat),
// count (ls) or drop (rm) pending uploads by hand. It costs two fsyncs per
// capture file, which is nothing next to writing the file.

const (
	entryVersion = 1
	entrySuffix  = ".json"
	lockName     = ".lock"
)

// entry is what the spool keeps for one pending upload: everything that
// decides what the object will look like, fixed at Enqueue, so that a
// retry after a restart (even under a changed configuration) writes the
// same key with the same parts. The bucket, endpoint, credentials and
// checksum come from the configuration of the exporter that uploads.
type entry struct {
	Version     int               `json:"version"`
	Key         string            `json:"key"`
	Path        string            `json:"path"`
	Size        int64             `json:"size"`
	PartSize    int64             `json:"part_size"`
	Sidecar     string            `json:"sidecar,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Enqueued    time.Time         `json:"enqueued"`
}

// entryID names a key's entry file.
func entryID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

type spool struct {
	dir  string
	lock *os.File
}

// openSpool creates the directory if need be and locks it.
func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create spool %s: %w", dir, err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	held, err := lockFile(lf)
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock spool %s: %w", dir, err)
	}
	if held {
		lf.Close()
		return nil, userErr(ErrSpoolLocked, nil, fmt.Sprintf("spool %s is in use by another ringtap process: give each exporter its own spool", dir))
	}
	return &spool{dir: dir, lock: lf}, nil
}

func (s *spool) close() error { return s.lock.Close() }

func (s *spool) path(id string) string { return filepath.Join(s.dir, id+entrySuffix) }

// put writes e durably under id, replacing any entry of that id.
func (s *spool) put(id string, e entry) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode spool entry: %w", err)
	}
	f, err := os.CreateTemp(s.dir, "."+id+".*.tmp")
	if err != nil {
		return fmt.Errorf("write spool entry: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(id))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write spool entry %s: %w", s.path(id), err)
	}
	return nil
}

// remove deletes id's entry durably.
func (s *spool) remove(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spool entry: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("remove spool entry: %w", err)
	}
	return nil
}

type loadedEntry struct {
	id string
	e  entry
}

// load reads every entry, oldest first. Leftover temporary files (a crash
// inside put, whose Enqueue never returned) are removed; an entry that
// does not parse is renamed to .bad and logged.
func (s *spool) load(log *slog.Logger) ([]loadedEntry, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read spool %s: %w", s.dir, err)
	}
	var out []loadedEntry
	for _, de := range des {
		name := de.Name()
		full := filepath.Join(s.dir, name)
		switch {
		case strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp"):
			os.Remove(full)
			continue
		case !de.Type().IsRegular() || !strings.HasSuffix(name, entrySuffix):
			continue
		}
		id := strings.TrimSuffix(name, entrySuffix)
		e, err := readEntry(full)
		if err == nil && entryID(e.Key) != id {
			err = fmt.Errorf("entry for key %q is under the name of another key", e.Key)
		}
		if err != nil {
			log.Error("spool entry set aside: it does not parse", "entry", full, "err", err)
			os.Rename(full, full+".bad")
			continue
		}
		out = append(out, loadedEntry{id: id, e: e})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].e.Enqueued.Equal(out[j].e.Enqueued) {
			return out[i].e.Enqueued.Before(out[j].e.Enqueued)
		}
		return out[i].e.Key < out[j].e.Key
	})
	return out, nil
}

func readEntry(path string) (entry, error) {
	var e entry
	data, err := os.ReadFile(path)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, err
	}
	switch {
	case e.Version != entryVersion:
		return e, fmt.Errorf("version %d, want %d", e.Version, entryVersion)
	case e.Key == "" || !filepath.IsAbs(e.Path):
		return e, errors.New("no key or no absolute path")
	case e.PartSize < MinPartSize:
		return e, fmt.Errorf("part size %d", e.PartSize)
	}
	return e, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
