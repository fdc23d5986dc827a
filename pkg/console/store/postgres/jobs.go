package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/internal/runs"
)

const jobColumns = `id, created_at, expires_at, interfaces, filter, snaplen, duration_ns, max_packets, max_bytes, destination, cancel_requested_at`

const runColumns = `job_id, device_id, state, claim, packets, bytes, drops, size, error, updated_at,
	result_location, result_size, result_sha256, result_stored_at`

// nullTime is t as a parameter, NULL when zero.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// scanJob reads the jobColumns of a row; the job has no runs yet.
func scanJob(row pgx.Row) (store.Job, error) {
	var (
		j                             store.Job
		expires, canceled             *time.Time
		snaplen, duration, maxPackets int64
		maxBytes                      int64
	)
	if err := row.Scan(&j.ID, &j.CreatedAt, &expires, &j.Spec.Interfaces, &j.Spec.Filter, &snaplen, &duration,
		&maxPackets, &maxBytes, &j.Spec.Destination, &canceled); err != nil {
		return store.Job{}, err
	}
	j.CreatedAt, j.ExpiresAt, j.CancelRequestedAt = j.CreatedAt.UTC(), utc(expires), utc(canceled)
	j.Spec.Interfaces = nonNil(j.Spec.Interfaces)
	j.Spec.SnapLen, j.Spec.Duration = uint32(snaplen), time.Duration(duration)
	j.Spec.MaxPackets, j.Spec.MaxBytes = uint64(maxPackets), uint64(maxBytes)
	j.Runs = []store.Run{}
	return j, nil
}

// scanRun reads the runColumns of a row; the run has no transitions yet.
func scanRun(row pgx.Row) (store.Run, error) {
	var (
		r                           store.Run
		state                       string
		packets, bytes, drops, size int64
		location, sha               *string
		resultSize                  *int64
		storedAt                    *time.Time
	)
	if err := row.Scan(&r.JobID, &r.Device, &state, &r.Claim, &packets, &bytes, &drops, &size, &r.Error, &r.UpdatedAt,
		&location, &resultSize, &sha, &storedAt); err != nil {
		return store.Run{}, err
	}
	r.State = store.RunState(state)
	r.Packets, r.Bytes, r.Drops, r.Size = uint64(packets), uint64(bytes), uint64(drops), uint64(size)
	r.UpdatedAt = r.UpdatedAt.UTC()
	if location != nil {
		r.Result = &store.RunResult{Location: *location, StoredAt: utc(storedAt)}
		if resultSize != nil {
			r.Result.Size = *resultSize
		}
		if sha != nil {
			r.Result.SHA256 = *sha
		}
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
	rows, err := q.Query(ctx, `SELECT `+runColumns+` FROM job_runs WHERE `+where+` ORDER BY job_id, device_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	rs := []store.Run{}
	index := map[runKey]int{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read runs: %w", err)
		}
		index[runKey{r.JobID, r.Device}] = len(rs)
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if len(rs) == 0 {
		return rs, nil
	}
	trows, err := q.Query(ctx, `SELECT job_id, device_id, state, at, reason FROM job_run_transitions
		WHERE (job_id, device_id) IN (SELECT job_id, device_id FROM job_runs WHERE `+where+`) ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read run transitions: %w", err)
	}
	defer trows.Close()
	for trows.Next() {
		var (
			k     runKey
			tr    store.Transition
			state string
		)
		if err := trows.Scan(&k.job, &k.device, &state, &tr.At, &tr.Reason); err != nil {
			return nil, fmt.Errorf("read run transitions: %w", err)
		}
		tr.State, tr.At = store.RunState(state), tr.At.UTC()
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
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	js := []store.Job{}
	index := map[int64]int{}
	var lo, hi int64
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
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
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	if len(js) == 0 {
		return js, nil
	}
	// The runs of every job between the lowest and the highest id,
	// picked out by id.
	rs, err := loadRuns(ctx, q, `job_id BETWEEN $1 AND $2`, lo, hi)
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
	js, err := loadJobs(ctx, q, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id)
	if err != nil {
		return store.Job{}, fmt.Errorf("read job %d: %w", id, err)
	}
	if len(js) == 0 {
		return store.Job{}, fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	return js[0], nil
}

// run reads the device's run of job id, and its job's expiry; forUpdate
// locks the run's row.
func run(ctx context.Context, q querier, id int64, device string, forUpdate bool) (store.Run, time.Time, error) {
	query := `SELECT j.expires_at FROM job_runs r JOIN jobs j ON j.id = r.job_id WHERE r.job_id = $1 AND r.device_id = $2`
	if forUpdate {
		query += ` FOR UPDATE OF r`
	}
	var expires *time.Time
	err := q.QueryRow(ctx, query, id, device).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Run{}, time.Time{}, fmt.Errorf("job %d has no run of device %s: %w", id, device, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, time.Time{}, fmt.Errorf("read the run of device %s in job %d: %w", device, id, err)
	}
	rs, err := loadRuns(ctx, q, `job_id = $1 AND device_id = $2`, id, device)
	if err != nil {
		return store.Run{}, time.Time{}, fmt.Errorf("read the run of device %s in job %d: %w", device, id, err)
	}
	if len(rs) != 1 {
		return store.Run{}, time.Time{}, fmt.Errorf("job %d has no run of device %s: %w", id, device, store.ErrNotFound)
	}
	return rs[0], utc(expires), nil
}

// transition stores the state change of a run.
func transition(ctx context.Context, q querier, id int64, device string, tr store.Transition) error {
	if _, err := q.Exec(ctx, `INSERT INTO job_run_transitions (job_id, device_id, state, at, reason) VALUES ($1, $2, $3, $4, $5)`,
		id, device, string(tr.State), tr.At, tr.Reason); err != nil {
		return fmt.Errorf("store the transition of device %s in job %d to %s: %w", device, id, tr.State, err)
	}
	return nil
}

// end moves a live run to state (a terminal one) at now with reason,
// which becomes its error too when errorToo.
func end(ctx context.Context, q querier, id int64, device string, state store.RunState, reason string, errorToo bool, now time.Time) error {
	var errText *string
	if errorToo {
		errText = &reason
	}
	if _, err := q.Exec(ctx, `UPDATE job_runs SET state = $1, error = COALESCE($2, error), updated_at = $3 WHERE job_id = $4 AND device_id = $5`,
		string(state), errText, now, id, device); err != nil {
		return fmt.Errorf("end the run of device %s in job %d as %s: %w", device, id, state, err)
	}
	return transition(ctx, q, id, device, store.Transition{State: state, At: now, Reason: reason})
}

// bumpJobs increases the JobsSeq of devices (sorted: the order of the
// row locks) and notifies them at commit.
func bumpJobs(ctx context.Context, tx pgx.Tx, devices []string) error {
	for _, d := range devices {
		if _, err := tx.Exec(ctx, `UPDATE devices SET jobs_seq = jobs_seq + 1 WHERE id = $1`, d); err != nil {
			return fmt.Errorf("bump the jobs of device %s: %w", d, err)
		}
		if err := notify(ctx, tx, d); err != nil {
			return err
		}
	}
	return nil
}

// CreateJob implements store.Jobs. The devices are checked (and their
// rows locked, in id order) before the job takes an id, so that a refused
// job leaves no gap in the ids.
func (s *Store) CreateJob(ctx context.Context, j store.Job, devices []string) (store.Job, error) {
	ds, err := runs.CheckJob(j, devices)
	if err != nil {
		return store.Job{}, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Job{}, fmt.Errorf("create job: %w", err)
	}
	defer tx.Rollback(context.Background())
	for _, d := range ds {
		var revoked *time.Time
		err := tx.QueryRow(ctx, `SELECT revoked_at FROM devices WHERE id = $1 FOR UPDATE`, d).Scan(&revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.Job{}, fmt.Errorf("create job: device %s: %w", d, store.ErrNotFound)
		case err != nil:
			return store.Job{}, fmt.Errorf("create job: read device %s: %w", d, err)
		case revoked != nil:
			return store.Job{}, fmt.Errorf("create job for device %s: %w", d, store.ErrRevoked)
		}
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO jobs (created_at, expires_at, interfaces, filter, snaplen, duration_ns, max_packets, max_bytes, destination)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		j.CreatedAt, nullTime(j.ExpiresAt), j.Spec.Interfaces, j.Spec.Filter, int64(j.Spec.SnapLen), int64(j.Spec.Duration),
		int64(j.Spec.MaxPackets), int64(j.Spec.MaxBytes), j.Spec.Destination).Scan(&id)
	if err != nil {
		return store.Job{}, fmt.Errorf("create job: %w", err)
	}
	for _, d := range ds {
		if _, err := tx.Exec(ctx, `INSERT INTO job_runs (job_id, device_id, state, updated_at) VALUES ($1, $2, $3, $4)`,
			id, d, string(store.RunQueued), j.CreatedAt); err != nil {
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
	if err := tx.Commit(ctx); err != nil {
		return store.Job{}, fmt.Errorf("create job %d: %w", id, err)
	}
	return got, nil
}

// readTx begins a read-only transaction: one snapshot for a job and its
// runs.
func (s *Store) readTx(ctx context.Context) (pgx.Tx, error) {
	return s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

// GetJob implements store.Jobs.
func (s *Store) GetJob(ctx context.Context, id int64) (store.Job, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return store.Job{}, fmt.Errorf("read job %d: %w", id, err)
	}
	defer tx.Rollback(context.Background())
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
	defer tx.Rollback(context.Background())
	js, err := loadJobs(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE $1::bigint = 0 OR id < $1 ORDER BY id DESC LIMIT $2`,
		opts.Before, limit)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// CancelJob implements store.Jobs. The job's row and then its live runs'
// rows are locked, so a claim racing with the cancel either accepts the
// run first (which then sees CancelRequestedAt) or finds it canceled.
func (s *Store) CancelJob(ctx context.Context, id int64, now time.Time) (store.Job, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	defer tx.Rollback(context.Background())
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Job{}, fmt.Errorf("cancel: job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	rows, err := tx.Query(ctx, `SELECT device_id, state FROM job_runs WHERE job_id = $1 AND state IN (`+runs.Live+`)
		ORDER BY device_id FOR UPDATE`, id)
	if err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	var live, queued []string
	for rows.Next() {
		var d, state string
		if err := rows.Scan(&d, &state); err != nil {
			rows.Close()
			return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
		}
		live = append(live, d)
		if store.RunState(state) == store.RunQueued {
			queued = append(queued, d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	if len(live) == 0 {
		return store.Job{}, fmt.Errorf("cancel job %d: every run has ended: %w", id, store.ErrJobEnded)
	}
	for _, d := range queued {
		if err := end(ctx, tx, id, d, store.RunCanceled, runs.CanceledQueued, true, now); err != nil {
			return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, $1) WHERE id = $2`, now, id); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	if err := bumpJobs(ctx, tx, live); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	j, err := job(ctx, tx, id)
	if err != nil {
		return store.Job{}, fmt.Errorf("cancel: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Job{}, fmt.Errorf("cancel job %d: %w", id, err)
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
	defer tx.Rollback(context.Background())
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1`, device).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("runs: device %s: %w", device, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("runs of device %s: %w", device, err)
	}
	js, err := loadJobs(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE id IN (
		SELECT r.job_id FROM job_runs r JOIN jobs j ON j.id = r.job_id
		WHERE r.device_id = $1 AND r.state IN (`+runs.Live+`)
			AND NOT (r.state = 'queued' AND j.expires_at IS NOT NULL AND j.expires_at <= $2))
		ORDER BY id`, device, time.Now())
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

// ClaimRun implements store.Jobs. The run's row is locked (FOR UPDATE)
// for the transaction, so of claims racing on any consoles, one accepts
// the run and the others see it accepted once it commits.
func (s *Store) ClaimRun(ctx context.Context, id int64, device, claim string, now time.Time) (store.Run, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Run{}, fmt.Errorf("claim the run of device %s in job %d: %w", device, id, err)
	}
	defer tx.Rollback(context.Background())
	r, expires, err := run(ctx, tx, id, device, true)
	if err != nil {
		return store.Run{}, fmt.Errorf("claim: %w", err)
	}
	accept, err := runs.Claim(r, expires, claim, now)
	if err != nil || !accept {
		return r, err
	}
	if _, err := tx.Exec(ctx, `UPDATE job_runs SET state = $1, claim = $2, updated_at = $3 WHERE job_id = $4 AND device_id = $5`,
		string(store.RunAccepted), claim, now, id, device); err != nil {
		return store.Run{}, fmt.Errorf("claim the run of device %s in job %d: %w", device, id, err)
	}
	if err := transition(ctx, tx, id, device, store.Transition{State: store.RunAccepted, At: now}); err != nil {
		return store.Run{}, fmt.Errorf("claim: %w", err)
	}
	return commitRun(ctx, tx, id, device, "claim")
}

// commitRun reads the run back and commits tx.
func commitRun(ctx context.Context, tx pgx.Tx, id int64, device, what string) (store.Run, error) {
	r, _, err := run(ctx, tx, id, device, false)
	if err != nil {
		return store.Run{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Run{}, fmt.Errorf("%s the run of device %s in job %d: %w", what, device, id, err)
	}
	return r, nil
}

// UpdateRun implements store.Jobs. The run's row is locked for the
// transaction.
func (s *Store) UpdateRun(ctx context.Context, id int64, device, claim string, u store.RunUpdate, now time.Time) (store.Run, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Run{}, fmt.Errorf("update the run of device %s in job %d: %w", device, id, err)
	}
	defer tx.Rollback(context.Background())
	r, _, err := run(ctx, tx, id, device, true)
	if err != nil {
		return store.Run{}, fmt.Errorf("update: %w", err)
	}
	next, tr, stored, err := runs.Update(r, claim, u, now)
	if err != nil || !stored {
		return r, err
	}
	if _, err := tx.Exec(ctx, `UPDATE job_runs SET state = $1, packets = $2, bytes = $3, drops = $4, size = $5, error = $6, updated_at = $7
		WHERE job_id = $8 AND device_id = $9`,
		string(next.State), int64(next.Packets), int64(next.Bytes), int64(next.Drops), int64(next.Size), next.Error, now,
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

// AttachResult implements store.Jobs. The run's row is locked for the
// transaction.
func (s *Store) AttachResult(ctx context.Context, id int64, device string, res store.RunResult) (store.Run, error) {
	if err := runs.CheckResult(id, device, res); err != nil {
		return store.Run{}, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Run{}, fmt.Errorf("attach the result of device %s in job %d: %w", device, id, err)
	}
	defer tx.Rollback(context.Background())
	r, _, err := run(ctx, tx, id, device, true)
	if err != nil {
		return store.Run{}, fmt.Errorf("attach result: %w", err)
	}
	attach, err := runs.Attach(r, res)
	if err != nil || !attach {
		return r, err
	}
	if _, err := tx.Exec(ctx, `UPDATE job_runs SET result_location = $1, result_size = $2, result_sha256 = $3, result_stored_at = $4
		WHERE job_id = $5 AND device_id = $6`, res.Location, res.Size, res.SHA256, nullTime(res.StoredAt), id, device); err != nil {
		return store.Run{}, fmt.Errorf("attach the result of device %s in job %d: %w", device, id, err)
	}
	return commitRun(ctx, tx, id, device, "attach result")
}

// ExpireRuns implements store.Jobs. Runs locked by another transaction
// (a claim, another console's ExpireRuns) are skipped: the next call
// takes those still queued.
func (s *Store) ExpireRuns(ctx context.Context, now time.Time) ([]store.Run, error) {
	return s.endRuns(ctx, "expire runs", `SELECT r.job_id, r.device_id FROM job_runs r JOIN jobs j ON j.id = r.job_id
		WHERE r.state = 'queued' AND j.expires_at IS NOT NULL AND j.expires_at <= $1
		ORDER BY r.job_id, r.device_id FOR UPDATE OF r SKIP LOCKED`,
		[]any{now}, store.RunExpired, runs.Expired, false, now)
}

// FailSilentRuns implements store.Jobs. Runs locked by another
// transaction (an update arriving now, another console's call) are
// skipped.
func (s *Store) FailSilentRuns(ctx context.Context, cutoff time.Time, reason string, now time.Time) ([]store.Run, error) {
	return s.endRuns(ctx, "fail silent runs", `SELECT job_id, device_id FROM job_runs
		WHERE state IN (`+runs.Active+`) AND updated_at < $1
		ORDER BY job_id, device_id FOR UPDATE SKIP LOCKED`,
		[]any{cutoff}, store.RunFailed, reason, true, now)
}

// endRuns ends the runs that query (job id, device; locking them)
// selects as state, with reason, at now, and returns them.
func (s *Store) endRuns(ctx context.Context, what, query string, args []any, state store.RunState, reason string, errorToo bool, now time.Time) ([]store.Run, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, query, args...)
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
		r, _, err := run(ctx, tx, k.job, k.device, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ended = append(ended, r)
	}
	if len(keys) == 0 {
		return ended, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ended, nil
}
