package jobrunner

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// The files of a run's directory, <jobs dir>/<id>/.
const (
	// RecordFile is the run's state (record), written atomically.
	RecordFile = "run.json"
	// CaptureFile is the run's pcapng.
	CaptureFile = "capture.pcapng"
)

// The local states of a run (record.State), in order.
const (
	// stateClaiming: the claim token is on disk, the console has not
	// confirmed the claim yet.
	stateClaiming = "claiming"
	// stateCapturing: the capture runs (or ran when the agent died).
	stateCapturing = "capturing"
	// stateUploading: the capture stopped and its end is decided; the
	// file goes up.
	stateUploading = "uploading"
	// stateFinishing: the console has the result (or there is none); the
	// end goes to the console.
	stateFinishing = "finishing"
)

// The ends of a run the agent reports (FinishRequest.State).
const (
	outcomeFinished = "finished"
	outcomeFailed   = "failed"
	outcomeCanceled = "canceled"
	// outcomeEnded: the console ended the run; nothing is reported.
	outcomeEnded = "ended"
)

// The reasons of the ends the runner decides.
const (
	ReasonCanceled  = "canceled by an admin"
	ReasonStopped   = "the agent was stopped during the run"
	ReasonRestarted = "the agent restarted during the run (it was killed or crashed); the partial capture was uploaded"
	// ReasonRestartedEmpty: the agent died before a whole block of the
	// capture was on disk.
	ReasonRestartedEmpty = "the agent restarted during the run (it was killed or crashed) before any of the capture was written"
)

// record is a run's run.json: what the runner needs to carry the run on
// after a restart.
type record struct {
	ID    int64  `json:"id"`
	Claim string `json:"claim"`
	// Job is the run's spec as the console gave it.
	Job   jobapi.AgentJob `json:"spec"`
	State string          `json:"state"`
	// StartedAt is when the capture started; PID the agent's process
	// then.
	StartedAt time.Time `json:"started_at,omitzero"`
	PID       int       `json:"pid,omitempty"`
	// StoppedAt, Outcome and Reason are set when the capture stopped
	// (or the run ended without one).
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	Outcome   string    `json:"outcome,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// Progress is the capture's final count.
	Progress jobapi.Progress `json:"progress"`
	// HasFile: CaptureFile holds the result to upload, of Size bytes
	// and SHA256.
	HasFile bool   `json:"has_file,omitempty"`
	Size    int64  `json:"size,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// Uploaded: the console (or the store) confirmed the whole result.
	Uploaded bool `json:"uploaded,omitempty"`
	// Location is the object's URL of an S3 destination, once uploaded.
	Location string `json:"location,omitempty"`
}

// newClaim is a random 128-bit claim token, 32 hex digits.
func newClaim() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("jobrunner: read random claim: %v", err)) // crypto/rand does not fail
	}
	return hex.EncodeToString(b[:])
}

// runDir is the directory of run id.
func runDir(dir string, id int64) string { return filepath.Join(dir, strconv.FormatInt(id, 10)) }

// save writes rec to dir/RecordFile, atomically, mode 0600.
func (rec *record) save(dir string) error {
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("write run %d: %w", rec.ID, err)
	}
	return atomicfile.Write(filepath.Join(dir, RecordFile), append(raw, '\n'), 0o600)
}

// loadRecord reads dir/RecordFile.
func loadRecord(dir string) (*record, error) {
	raw, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, RecordFile), err)
	}
	switch rec.State {
	case stateClaiming, stateCapturing, stateUploading, stateFinishing:
	default:
		return nil, fmt.Errorf("read %s: unknown state %q", filepath.Join(dir, RecordFile), rec.State)
	}
	if rec.ID <= 0 || rec.Claim == "" {
		return nil, fmt.Errorf("read %s: no id or claim", filepath.Join(dir, RecordFile))
	}
	return &rec, nil
}

// scanned is what scan found in the jobs directory.
type scanned struct {
	records []*record
	// bad are run directories whose run.json cannot be read: left as
	// they are, for a human.
	bad map[string]error
}

// scan reads the run directories of dir. A directory without run.json
// was never claimed (the record is written before the claim): it is
// removed.
func scan(dir string) (scanned, error) {
	s := scanned{bad: map[string]error{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return s, fmt.Errorf("read the jobs directory: %w", err)
	}
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if !e.IsDir() || err != nil || id <= 0 {
			continue
		}
		d := filepath.Join(dir, e.Name())
		rec, err := loadRecord(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.RemoveAll(d); err != nil {
				s.bad[d] = err
			}
			continue
		case err != nil:
			s.bad[d] = err
			continue
		case rec.ID != id:
			s.bad[d] = fmt.Errorf("%s is of run %d", filepath.Join(d, RecordFile), rec.ID)
			continue
		}
		s.records = append(s.records, rec)
	}
	sort.Slice(s.records, func(i, j int) bool { return s.records[i].ID < s.records[j].ID })
	return s, nil
}
