-- Capture jobs (issue 12): a job is one spec for N devices, each device's
-- run of it has its own state, and every state change is kept. Times are
-- Unix nanoseconds (UTC); NULL is never.

-- jobs_seq increases when the device's jobs change in a way its agent
-- must see (a job created for it, a cancel requested).
ALTER TABLE devices ADD COLUMN jobs_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE jobs (
	id                  INTEGER PRIMARY KEY AUTOINCREMENT, -- 1, 2, 3, ... never reused
	created_at          INTEGER NOT NULL,
	expires_at          INTEGER,                          -- a run still queued then expires
	interfaces          TEXT NOT NULL,                    -- JSON array of names
	filter              TEXT NOT NULL,
	snaplen             INTEGER NOT NULL,
	duration_ns         INTEGER NOT NULL,
	max_packets         INTEGER NOT NULL,
	max_bytes           INTEGER NOT NULL,
	destination         TEXT NOT NULL,                    -- "console" or s3://bucket/prefix/
	cancel_requested_at INTEGER
) STRICT;

CREATE TABLE job_runs (
	job_id           INTEGER NOT NULL REFERENCES jobs (id),
	device_id        TEXT NOT NULL REFERENCES devices (id),
	state            TEXT NOT NULL CHECK (state IN ('queued', 'accepted', 'running', 'uploading', 'finished', 'failed', 'canceled', 'expired')),
	claim            TEXT NOT NULL DEFAULT '',            -- of the agent attempt that accepted it
	packets          INTEGER NOT NULL DEFAULT 0,
	bytes            INTEGER NOT NULL DEFAULT 0,
	drops            INTEGER NOT NULL DEFAULT 0,
	size             INTEGER NOT NULL DEFAULT 0,
	error            TEXT NOT NULL DEFAULT '',
	updated_at       INTEGER NOT NULL,                    -- last transition or progress
	result_location  TEXT,                                -- NULL until a result is attached
	result_size      INTEGER,
	result_sha256    TEXT,
	result_stored_at INTEGER,
	PRIMARY KEY (job_id, device_id)
) STRICT;
CREATE INDEX job_runs_device_id ON job_runs (device_id, job_id);
CREATE INDEX job_runs_live ON job_runs (state, updated_at)
	WHERE state IN ('queued', 'accepted', 'running', 'uploading');

CREATE TABLE job_run_transitions (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,          -- the order of a run's transitions
	job_id    INTEGER NOT NULL,
	device_id TEXT NOT NULL,
	state     TEXT NOT NULL,
	at        INTEGER NOT NULL,
	reason    TEXT NOT NULL DEFAULT '',
	FOREIGN KEY (job_id, device_id) REFERENCES job_runs (job_id, device_id)
) STRICT;
CREATE INDEX job_run_transitions_run ON job_run_transitions (job_id, device_id, id);
