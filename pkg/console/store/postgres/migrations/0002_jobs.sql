-- Capture jobs (issue 12): a job is one spec for N devices, each device's
-- run of it has its own state, and every state change is kept.

-- jobs_seq increases when the device's jobs change in a way its agent
-- must see (a job created for it, a cancel requested).
ALTER TABLE devices ADD COLUMN jobs_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE jobs (
	id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- 1, 2, 3, ...
	created_at          timestamptz NOT NULL,
	expires_at          timestamptz,       -- a run still queued then expires; NULL never
	interfaces          jsonb NOT NULL,    -- array of names
	filter              text NOT NULL,
	snaplen             bigint NOT NULL,
	duration_ns         bigint NOT NULL,
	max_packets         bigint NOT NULL,
	max_bytes           bigint NOT NULL,
	destination         text NOT NULL,     -- "console" or s3://bucket/prefix/
	cancel_requested_at timestamptz
);

CREATE TABLE job_runs (
	job_id           bigint NOT NULL REFERENCES jobs (id),
	device_id        text NOT NULL REFERENCES devices (id),
	state            text NOT NULL CHECK (state IN ('queued', 'accepted', 'running', 'uploading', 'finished', 'failed', 'canceled', 'expired')),
	claim            text NOT NULL DEFAULT '', -- of the agent attempt that accepted it
	packets          bigint NOT NULL DEFAULT 0,
	bytes            bigint NOT NULL DEFAULT 0,
	drops            bigint NOT NULL DEFAULT 0,
	size             bigint NOT NULL DEFAULT 0,
	error            text NOT NULL DEFAULT '',
	updated_at       timestamptz NOT NULL,     -- last transition or progress
	result_location  text,                     -- NULL until a result is attached
	result_size      bigint,
	result_sha256    text,
	result_stored_at timestamptz,
	PRIMARY KEY (job_id, device_id)
);
CREATE INDEX job_runs_device_id ON job_runs (device_id, job_id);
CREATE INDEX job_runs_live ON job_runs (state, updated_at)
	WHERE state IN ('queued', 'accepted', 'running', 'uploading');

CREATE TABLE job_run_transitions (
	id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the order of a run's transitions
	job_id    bigint NOT NULL,
	device_id text NOT NULL,
	state     text NOT NULL,
	at        timestamptz NOT NULL,
	reason    text NOT NULL DEFAULT '',
	FOREIGN KEY (job_id, device_id) REFERENCES job_runs (job_id, device_id)
);
CREATE INDEX job_run_transitions_run ON job_run_transitions (job_id, device_id, id);
