package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/internal/runs"
)

const jobColumns = `id, created_at, expires_at, interfaces, filter, snaplen, duration_ns, max_packets, max_bytes, destination, cancel_requested_at`

const runColumns = `job_id, device_id, state, claim, packets, bytes, drops, size, error, updated_at,
	result_location, result_size, result_sha256, result_stored_at`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// nullNS is t as stored, NULL when zero.
func nullNS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ns(t), Valid: true}
}

// scanJob reads the jobColumns of a row; the job has no runs yet.
func scanJob(row scanner) (store.Job, error) {
	var (
		j                  store.Job
		created            int64
		expires, canceled  sql.NullInt64
		ifaces             string
		duration           int64
		maxPackets, maxLen int64
	)
	if err := row.Scan(&j.ID, &created, &expires, &ifaces, &j.Spec.Filter, &j.Spec.SnapLen, &duration,
		&maxPackets, &maxLen, &j.Spec.Destination, &canceled); err != nil {
		return store.Job{}, err
	}
	if err := json.Unmarshal([]byte(ifaces), &j.Spec.Interfaces); err != nil {
		return store.Job{}, fmt.Errorf("job %d interfaces: %w", j.ID, err)
	}
	j.CreatedAt, j.ExpiresAt, j.CancelRequestedAt = fromNS(created), fromNullNS(expires), fromNullNS(canceled)
	j.Spec.Duration, j.Spec.MaxPackets, j.Spec.MaxBytes = time.Duration(duration), uint64(maxPackets), uint64(maxLen)
	j.Runs = []store.Run{}
	return j, nil
}

// scanRun reads the runColumns of a row; the run has no transitions yet.
func scanRun(row scanner) (store.Run, error) {
	var (
		r                     store.Run
		packets, bytes, drops int64
		size, updated         int64
		location, sha         sql.NullString
		resultSize, storedAt  sql.NullInt64
	)
	if err := row.Scan(&r.JobID, &r.Device, &r.State, &r.Claim, &packets, &bytes, &drops, &size, &r.Error, &updated,
		&location, &resultSize, &sha, &storedAt); err != nil {
		return store.Run{}, err
	}
	r.Packets, r.Bytes, r.Drops, r.Size = uint64(packets), uint64(bytes), uint64(drops), uint64(size)
	r.UpdatedAt = fromNS(updated)
	if location.Valid {
		r.Result = &store.RunResult{Location: location.String, Size: resultSize.Int64, SHA256: sha.String, StoredAt: fromNullNS(storedAt)}
	}
	r.Transitions = []store.Transition{}
	return r, nil
}

type runKey struct {
	job    int64
	device string
}

// loadRuns reads the runs that where (a condition on job_runs' columns)
// selects, by job then device, each with its transitions in order.
func loadRuns(ctx context.Context, q querier, where string, args ...any) ([]store.Run, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+runColumns+` FROM job_runs WHERE `+where+` ORDER BY job_id, device_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	rs := []store.Run{}
	index := map[runKey]int{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		index[runKey{r.JobID, r.Device}] = len(rs)
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	rows.Close()
	if len(rs) == 0 {
		return rs, nil
	}
	trows, err := q.QueryContext(ctx, `SELECT job_id, device_id, state, at, reason FROM job_run_transitions
		WHERE (job_id, device_id) IN (SELECT job_id, device_id FROM job_runs WHERE `+where+`) ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read run transitions: %w", err)
	}
	defer trows.Close()
	for trows.Next() {
		var (
			k  runKey
			tr store.Transition
			at int64
		)
		if err := trows.Scan(&k.job, &k.device, &tr.State, &at, &tr.Reason); err != nil {
			return nil, fmt.Errorf("read run transitions: %w", err)
		}
		tr.At = fromNS(at)
		if i, ok := index[k]; ok {
			rs[i].Transitions = append(rs[i].Transitions, tr)
		}
	}
	if err := trows.Err(); err != nil {
		return nil, fmt.Errorf("read run transitions: %w", err)
	}
	return rs, nil
}

// loadJobs reads the jobs that query (a SELECT of jobColumns) returns,
// in its order, each with its runs.
func loadJobs(ctx context.Context, q querier, query string, args ...any) ([]store.Job, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	defer rows.Close()
	js := []store.Job{}
	index := map[int64]int{}
	var lo, hi int64
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		if len(js) == 0 || j.ID < lo {
			lo = j.ID
		}
		if len(js) == 0 || j.ID > hi {
			hi = j.ID
		}
		index[j.ID] = len(js)
		js = append(js, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	rows.Close()
	if len(js) == 0 {
		return js, nil
	}
	// The jobs asked for are every job between the lowest and the
	// highest id, or their runs are picked out by id.
	rs, err := loadRuns(ctx, q, `job_id BETWEEN ? AND ?`, lo, hi)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if i, ok := index[r.JobID]; ok {
			js[i].Runs = append(js[i].Runs, r)
		}
	}
	return js, nil
}

// job reads one job with its runs.
func job(ctx context.Context, q querier, id int64) (store.Job, error) {
	js, err := loadJobs(ctx, q, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id)
	if err != nil {
		return store.Job{}, fmt.Errorf("read job %d: %w", id, err)
	}
	if len(js) == 0 {
		return store.Job{}, fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	return js[0], nil
}

// run reads the device's run of job id, and its job's expiry.
func run(ctx context.Context, q querier, id int64, device string) (store.Run, time.Time, error) {
	var expires sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT j.expires_at FROM job_runs r JOIN jobs j ON j.id = r.job_id
		WHERE r.job_id = ? AND r.device_id = ?`, id, device).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Run{}, time.Time{}, fmt.Errorf("job %d has no run of device %s: %w", id, device, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, time.Time{}, fmt.Errorf("read the run of device %s in job %d: %w", device, id, err)
	}
	rs, err := loadRuns(ctx, q, `job_id = ? AND device_id = ?`, id, device)
	if err != nil {
		return store.Run{}, time.Time{}, fmt.Errorf("read the run of device %s in job %d: %w", device, id, err)
	}
	if len(rs) != 1 {
		return store.Run{}, time.Time{}, fmt.Errorf("job %d has no run of device %s: %w", id, device, store.ErrNotFound)
	}
	return rs[0], fromNullNS(expires), nil
}

// transition stores the state change of a run.
func transition(ctx context.Context, q querier, id int64, device string, tr store.Transition) error {
	if _, err := q.ExecContext(ctx, `INSERT INTO job_run_transitions (job_id, device_id, state, at, reason) VALUES (?, ?, ?, ?, ?)`,
		id, device, string(tr.State), ns(tr.At), tr.Reason); err != nil {
		return fmt.Errorf("store the transition of device %s in job %d to %s: %w", device, id, tr.State, err)
	}
	return nil
}

// end moves a live run to state (a terminal one) at now with reason,
// which becomes its error too when errorToo.
func end(ctx context.Context, q querier, id int64, device string, state store.RunState, reason string, errorToo bool, now time.Time) error {
	var errText any
	if errorToo {
		errText = reason
	}
	if _, err := q.ExecContext(ctx, `UPDATE job_runs SET state = ?, error = COALESCE(?, error), updated_at = ? WHERE job_id = ? AND device_id = ?`,
		string(state), errText, ns(now), id, device); err != nil {
		return fmt.Errorf("end the run of device %s in job %d as %s: %w", device, id, state, err)
	}
	return transition(ctx, q, id, device, store.Transition{State: state, At: now, Reason: reason})
}

// bumpJobs increases the JobsSeq of devices.
func bumpJobs(ctx context.Context, q querier, devices []string) error {
	for _, d := range devices {
		if _, err := q.ExecContext(ctx, `UPDATE devices SET jobs_seq = jobs_seq + 1 WHERE id = ?`, d); err != nil {
			return fmt.Errorf("bump the jobs of device %s: %w", d, err)
		}
	}
	return nil
}

// CreateJob implements store.Jobs.
func (s *Store) CreateJob(ctx context.Context, j store.Job, devices []string) (store.Job, error) {
	ds, err := runs.CheckJob(j, devices)
	if err != nil {
		return store.Job{}, err
	}
	ifaces, err := jsonText(j.Spec.Interfaces)
	if err != nil {
		return store.Job{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Job{}, fmt.Errorf("create job: %w", err)
	}
	defer tx.Rollback()
	for _, d := range ds {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM devices WHERE id = ?`, d).Scan(&revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.Job{}, fmt.Errorf("create job: device %s: %w", d, store.ErrNotFound)
		case err != nil:
			return store.Job{}, fmt.Errorf("create job: read device %s: %w", d, err)
		case revoked.Valid:
			return store.Job{}, fmt.Errorf("create job for device %s: %w", d, store.ErrRevoked)
		}
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO jobs (created_at, expires_at, interfaces, filter, snaplen, duration_ns, max_packets, max_bytes, destination)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		ns(j.CreatedAt), nullNS(j.ExpiresAt), ifaces, j.Spec.Filter, j.Spec.SnapLen, int64(j.Spec.Duration),
		int64(j.Spec.MaxPackets), int64(j.Spec.MaxBytes), j.Spec.Destination).Scan(&id)
	if err != nil {
		return store.Job{}, fmt.Errorf("create job: %w", err)
	}
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_runs (job_id, device_id, state, updated_at) VALUES (?, ?, ?, ?)`,
			id, d, string(store.RunQueued), ns(j.CreatedAt)); err != nil {
			return store.Job{}, fmt.Errorf("create job %d: run of device %s: %w", id, d, err)
		}
		if err := transition(ctx, tx, id, d, store.Transition{State: store.RunQueued, At: j.CreatedAt}); err != nil {
			return store.Job{}, fmt.Errorf("create job: %w", err)
		}
	}
	if err := bumpJobs(ctx, tx, ds); err != nil {
		return store.Job{}, fmt.Errorf("create job %d: %w", id, err)
	}
	got, err := job(ctx, tx, id)
	if err != nil {
		return store.Job{}, fmt.Errorf("create job: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.Job{}, fmt.Errorf("create job %d: %w", id, err)
	}
	for _, d := range ds {
		s.hub.Notify(d)
	}
	return got, nil
}

// readTx begins a read-only transaction: one snapshot for a job and its
// runs.
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	return s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}

// GetJob implements store.Jobs.
func (s *Store) GetJob(ctx context.Context, id int64) (store.Job, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return store.Job{}, fmt.Errorf("read job %d: %w", id, err)
	}
	defer tx.Rollback()
	return job(ctx, tx, id)
}

// ListJobs implements store.Jobs.
func (s *Store) ListJobs(ctx context.Context, opts store.ListJobsOptions) ([]store.Job, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = runs.DefaultListLimit
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer tx.Rollback()
	js, err := loadJobs(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE ? = 0 OR id < ? ORDER BY id DESC LIMIT ?`,
		opts.Before, opts.Before, limit)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// CancelJob implements store.Jobs.
func (s *Store) CancelJob(ctx context.Context, id int64, now time.Time) (store.Job, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	defer tx.Rollback()
	j, err := job(ctx, tx, id)
	if err != nil {
		return store.Job{}, fmt.Errorf("cancel: %w", err)
	}
	var live []string
	for _, r := range j.Runs {
		if r.State.Terminal() {
			continue
		}
		live = append(live, r.Device)
		if r.State == store.RunQueued {
			if err := end(ctx, tx, id, r.Device, store.RunCanceled, runs.CanceledQueued, true, now); err != nil {
				return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
			}
		}
	}
	if len(live) == 0 {
		return store.Job{}, fmt.Errorf("cancel job %d: every run has ended: %w", id, store.ErrJobEnded)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE id = ?`, ns(now), id); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	if err := bumpJobs(ctx, tx, live); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	if j, err = job(ctx, tx, id); err != nil {
		return store.Job{}, fmt.Errorf("cancel: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	for _, d := range live {
		s.hub.Notify(d)
	}
	return j, nil
}

// DeviceRuns implements store.Jobs. A queued run's expiry is judged by
// the clock (time.Now), as DeviceRuns is given no time.
func (s *Store) DeviceRuns(ctx context.Context, device string) ([]store.DeviceRun, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("runs of device %s: %w", device, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, device).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("runs: device %s: %w", device, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("runs of device %s: %w", device, err)
	}
	js, err := loadJobs(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE id IN (
		SELECT r.job_id FROM job_runs r JOIN jobs j ON j.id = r.job_id
		WHERE r.device_id = ? AND r.state IN (`+runs.Live+`)
			AND NOT (r.state = 'queued' AND j.expires_at IS NOT NULL AND j.expires_at <= ?))
		ORDER BY id`, device, ns(time.Now()))
	if err != nil {
		return nil, fmt.Errorf("runs of device %s: %w", device, err)
	}
	drs := []store.DeviceRun{}
	for _, j := range js {
		for _, r := range j.Runs {
			if r.Device == device {
				j.Runs = []store.Run{r}
				drs = append(drs, store.DeviceRun{Job: j, Run: r})
				break
			}
		}
	}
	return drs, nil
}

// ClaimRun implements store.Jobs. The write transaction (BEGIN
// IMMEDIATE, one writer) makes it atomic.
func (s *Store) ClaimRun(ctx context.Context, id int64, device, claim string, now time.Time) (store.Run, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Run{}, fmt.Errorf("claim the run of device %s in job %d: %w", device, id, err)
	}
	defer tx.Rollback()
	r, expires, err := run(ctx, tx, id, device)
	if err != nil {
		return store.Run{}, fmt.Errorf("claim: %w", err)
	}
	accept, err := runs.Claim(r, expires, claim, now)
	if err != nil || !accept {
		return r, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE job_runs SET state = ?, claim = ?, updated_at = ? WHERE job_id = ? AND device_id = ?`,
		string(store.RunAccepted), claim, ns(now), id, device); err != nil {
		return store.Run{}, fmt.Errorf("claim the run of device %s in job %d: %w", device, id, err)
	}
	if err := transition(ctx, tx, id, device, store.Transition{State: store.RunAccepted, At: now}); err != nil {
		return store.Run{}, fmt.Errorf("claim: %w", err)
	}
	return commitRun(ctx, tx, id, device, "claim")
}

// commitRun reads the run back and commits tx.
func commitRun(ctx context.Context, tx *sql.Tx, id int64, device, what string) (store.Run, error) {
	r, _, err := run(ctx, tx, id, device)
	if err != nil {
		return store.Run{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Run{}, fmt.Errorf("%s the run of device %s in job %d: %w", what, device, id, err)
	}
	return r, nil
}

// UpdateRun implements store.Jobs.
func (s *Store) UpdateRun(ctx context.Context, id int64, device, claim string, u store.RunUpdate, now time.Time) (store.Run, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Run{}, fmt.Errorf("update the run of device %s in job %d: %w", device, id, err)
	}
	defer tx.Rollback()
	r, _, err := run(ctx, tx, id, device)
	if err != nil {
		return store.Run{}, fmt.Errorf("update: %w", err)
	}
	next, tr, stored, err := runs.Update(r, claim, u, now)
	if err != nil || !stored {
		return r, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE job_runs SET state = ?, packets = ?, bytes = ?, drops = ?, size = ?, error = ?, updated_at = ?
		WHERE job_id = ? AND device_id = ?`,
		string(next.State), int64(next.Packets), int64(next.Bytes), int64(next.Drops), int64(next.Size), next.Error, ns(now),
		id, device); err != nil {
		return store.Run{}, fmt.Errorf("update the run of device %s in job %d: %w", device, id, err)
	}
	if tr != nil {
		if err := transition(ctx, tx, id, device, *tr); err != nil {
			return store.Run{}, fmt.Errorf("update: %w", err)
		}
	}
	return commitRun(ctx, tx, id, device, "update")
}

// AttachResult implements store.Jobs.
func (s *Store) AttachResult(ctx context.Context, id int64, device string, res store.RunResult) (store.Run, error) {
	if err := runs.CheckResult(id, device, res); err != nil {
		return store.Run{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Run{}, fmt.Errorf("attach the result of device %s in job %d: %w", device, id, err)
	}
	defer tx.Rollback()
	r, _, err := run(ctx, tx, id, device)
	if err != nil {
		return store.Run{}, fmt.Errorf("attach result: %w", err)
	}
	attach, err := runs.Attach(r, res)
	if err != nil || !attach {
		return r, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE job_runs SET result_location = ?, result_size = ?, result_sha256 = ?, result_stored_at = ?
		WHERE job_id = ? AND device_id = ?`, res.Location, res.Size, res.SHA256, nullNS(res.StoredAt), id, device); err != nil {
		return store.Run{}, fmt.Errorf("attach the result of device %s in job %d: %w", device, id, err)
	}
	return commitRun(ctx, tx, id, device, "attach result")
}

// ExpireRuns implements store.Jobs.
func (s *Store) ExpireRuns(ctx context.Context, now time.Time) ([]store.Run, error) {
	return s.endRuns(ctx, "expire runs", `SELECT r.job_id, r.device_id FROM job_runs r JOIN jobs j ON j.id = r.job_id
		WHERE r.state = 'queued' AND j.expires_at IS NOT NULL AND j.expires_at <= ? ORDER BY r.job_id, r.device_id`,
		[]any{ns(now)}, store.RunExpired, runs.Expired, false, now)
}

// FailSilentRuns implements store.Jobs.
func (s *Store) FailSilentRuns(ctx context.Context, cutoff time.Time, reason string, now time.Time) ([]store.Run, error) {
	return s.endRuns(ctx, "fail silent runs", `SELECT job_id, device_id FROM job_runs
		WHERE state IN (`+runs.Active+`) AND updated_at < ? ORDER BY job_id, device_id`,
		[]any{ns(cutoff)}, store.RunFailed, reason, true, now)
}

// endRuns ends the runs that query (job id, device) selects as state,
// with reason, at now, and returns them.
func (s *Store) endRuns(ctx context.Context, what, query string, args []any, state store.RunState, reason string, errorToo bool, now time.Time) ([]store.Run, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var keys []runKey
	for rows.Next() {
		var k runKey
		if err := rows.Scan(&k.job, &k.device); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ended := []store.Run{}
	for _, k := range keys {
		if err := end(ctx, tx, k.job, k.device, state, reason, errorToo, now); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		r, _, err := run(ctx, tx, k.job, k.device)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ended = append(ended, r)
	}
	if len(keys) == 0 {
		return ended, nil
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ended, nil
}
