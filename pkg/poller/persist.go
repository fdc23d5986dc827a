package poller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the last applied config, in the state directory.
const StateFile = "applied-config.json"

// persisted is the content of StateFile.
type persisted struct {
	Generation int64           `json:"generation"`
	Captures   json.RawMessage `json:"captures"`
	AppliedAt  time.Time       `json:"applied_at"`
}

// loadPersisted reads StateFile in dir; (nil, nil) when there is none.
func loadPersisted(dir string) (*persisted, error) {
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last applied config: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("read last applied config %s: %w", filepath.Join(dir, StateFile), err)
	}
	return &p, nil
}

// save writes p to StateFile in dir, mode 0600, atomically.
func (p *persisted) save(dir string) error {
	raw, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("write last applied config: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, StateFile), append(raw, '\n'), 0o600)
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it, renames it over path and syncs the directory: a crash leaves
// the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
