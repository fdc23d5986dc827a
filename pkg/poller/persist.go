package poller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
)

// StateFile is the last applied config, in the state directory.
const StateFile = "applied-config.json"

// persisted is the content of StateFile.
type persisted struct {
	// DeviceID is the device whose config this is (empty in files
	// written before it was recorded: the enrolled device's).
	DeviceID   string          `json:"device_id,omitempty"`
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
	return atomicfile.Write(filepath.Join(dir, StateFile), append(raw, '\n'), 0o600)
}
