package config

import (
	"path/filepath"

	"github.com/goccy/go-yaml/ast"

	"github.com/ringtap/ringtap/pkg/storage"
)

// Defaults and limits of the jobs section.
const (
	DefaultJobsMaxConcurrent = 2
	// MaxJobsConcurrent bounds jobs.max_concurrent: each running job
	// holds a capture on its interfaces (MaxCapturesPerInterface share
	// one).
	MaxJobsConcurrent = MaxCapturesPerInterface
	// DefaultJobsMaxBytes is jobs.max_bytes: 2GiB.
	DefaultJobsMaxBytes = 2 << 30
	// DefaultJobsDir is the jobs directory under the state directory
	// when jobs.dir is not given.
	DefaultJobsDir = "jobs"
)

// DefaultJobsMinFree is jobs.min_free: 5% of the file system.
var DefaultJobsMinFree = storage.Space{Percent: 5}

// Jobs are the limits of the capture jobs an enrolled agent runs for its
// console (pkg/jobrunner).
type Jobs struct {
	// MaxConcurrent is how many runs the agent captures at once; more
	// wait queued on the console and are claimed as these end.
	MaxConcurrent int
	// Dir holds each run's directory (run.json, capture.pcapng) until the
	// console has its result; "" is DefaultJobsDir in the agent's state
	// directory (the config does not know it: the caller fills it in).
	Dir string
	// MaxBytes is the disk budget of job results held at once: running
	// runs count with their job's max_bytes, the others with their file.
	MaxBytes int64
	// MinFree is the part of the file system a job never takes.
	MinFree storage.Space
}

// DefaultJobs are the limits without a jobs section.
func DefaultJobs() Jobs {
	return Jobs{MaxConcurrent: DefaultJobsMaxConcurrent, MaxBytes: DefaultJobsMaxBytes, MinFree: DefaultJobsMinFree}
}

type rawJobs struct {
	MaxConcurrent ast.Node `yaml:"max_concurrent"`
	Dir           ast.Node `yaml:"dir"`
	MaxBytes      ast.Node `yaml:"max_bytes"`
	MinFree       ast.Node `yaml:"min_free"`
}

// jobs reads the jobs section.
func (r *reader) jobs(n ast.Node) Jobs {
	j := DefaultJobs()
	var raw rawJobs
	if !r.mapping(n, "jobs", "jobs", &raw) {
		return j
	}
	if v, ok := r.integer(raw.MaxConcurrent, "jobs.max_concurrent", 1, MaxJobsConcurrent); ok {
		j.MaxConcurrent = int(v)
	}
	if s, ok := r.absPath(raw.Dir, "jobs.dir"); ok {
		j.Dir = s
	}
	if v, ok := r.size(raw.MaxBytes, "jobs.max_bytes"); ok {
		if v < 1<<20 {
			r.fail(raw.MaxBytes, "jobs.max_bytes", "%s is below 1MiB, too small for a capture: give a budget such as 2GB", literal(raw.MaxBytes))
		} else {
			j.MaxBytes = v
		}
	}
	if v, ok := r.space(raw.MinFree, "jobs.min_free"); ok {
		j.MinFree = v
	}
	return j
}

// DirIn is Dir, or DefaultJobsDir in stateDir when Dir is "".
func (j Jobs) DirIn(stateDir string) string {
	if j.Dir != "" {
		return j.Dir
	}
	return filepath.Join(stateDir, DefaultJobsDir)
}
