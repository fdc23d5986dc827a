package jobrunner

import (
	"errors"
	"fmt"
)

// ErrBudget is wrapped by the reason of a run that does not fit in the
// disk budget.
var ErrBudget = errors.New("job does not fit in the agent's disk budget")

// minJobBytes is the least a job without max_bytes is started with.
const minJobBytes = 1 << 20

// budgetError is one sentence, wrapping ErrBudget.
type budgetError struct{ msg string }

func (e *budgetError) Error() string { return e.msg }
func (e *budgetError) Unwrap() error { return ErrBudget }

// runBudget is what a run counts in the disk budget; guarded by the
// Runner's mu.
type runBudget struct {
	// capturing: the run holds reserved bytes (its max_bytes), of which
	// its file has run.size so far.
	capturing bool
	reserved  int64
	// onDisk is the size of its finished file while it waits for upload.
	onDisk int64
}

// held is what the run counts against jobs.max_bytes.
func (b runBudget) held() int64 {
	if b.capturing {
		return b.reserved
	}
	return b.onDisk
}

// reserve checks that rn's job fits in the budget and, if it does,
// reserves its bytes: the MaxBytes its capture is started with. The
// error is the run's reason (ErrBudget) or a failure to read the file
// system.
func (r *Runner) reserve(rn *run) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lim := r.limits
	var held, growth int64
	for _, o := range r.runs {
		if o == rn {
			continue
		}
		held += o.budget.held()
		if o.budget.capturing {
			growth += max(0, o.budget.reserved-o.size.Load())
		}
	}
	avail, total, err := diskSpace(r.opts.Dir)
	if err != nil {
		return 0, fmt.Errorf("job %d: read the free space of the jobs directory %s: %w", rn.id, r.opts.Dir, err)
	}
	minFree := lim.MinFree.Of(total)
	budgetLeft := max(0, lim.MaxBytes-held)
	fsLeft := max(0, avail-minFree-growth)
	need := int64(min(rn.rec.Job.MaxBytes, 1<<62))
	if need == 0 {
		// No bound from the console: as much as is left.
		need = min(budgetLeft, fsLeft)
		if need < minJobBytes {
			need = minJobBytes
		}
	}
	switch {
	case need > budgetLeft:
		return 0, &budgetError{fmt.Sprintf("job %d needs up to %s but the agent's job budget has %s left (jobs.max_bytes %s, %s held): lower max_bytes or raise jobs.max_bytes",
			rn.id, formatBytes(need), formatBytes(budgetLeft), formatBytes(lim.MaxBytes), formatBytes(held))}
	case need > fsLeft:
		return 0, &budgetError{fmt.Sprintf("job %d needs up to %s but the file system of %s has %s free above jobs.min_free %s: lower max_bytes, free space there or lower jobs.min_free",
			rn.id, formatBytes(need), r.opts.Dir, formatBytes(fsLeft), formatSpace(lim.MinFree.Percent, lim.MinFree.Bytes))}
	}
	rn.budget = runBudget{capturing: true, reserved: need}
	return uint64(need), nil
}

// release sets what rn holds once its capture stopped: its file.
func (r *Runner) release(rn *run, onDisk int64) {
	r.mu.Lock()
	rn.budget = runBudget{onDisk: onDisk}
	r.mu.Unlock()
}

// heldBytes is what the runs hold now.
func (r *Runner) heldBytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, o := range r.runs {
		n += o.budget.held()
	}
	return n
}

// formatBytes writes n as 1.0 GiB, 200.0 MiB, 12 B.
func formatBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatSpace writes a min_free: 5% or a size.
func formatSpace(percent float64, bytes int64) string {
	if percent != 0 {
		return fmt.Sprintf("%g%%", percent)
	}
	return formatBytes(bytes)
}
