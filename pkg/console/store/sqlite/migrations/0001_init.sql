-- Times are Unix nanoseconds (UTC); NULL is never.
CREATE TABLE admin_tokens (
	hash       BLOB PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
	id             TEXT PRIMARY KEY,
	hostname       TEXT NOT NULL,
	machine_id     TEXT NOT NULL,
	agent_version  TEXT NOT NULL,
	interfaces     TEXT NOT NULL DEFAULT '[]', -- JSON array of names
	enrolled_at    INTEGER NOT NULL,
	cert_serial    TEXT NOT NULL,              -- the current certificate
	cert_not_after INTEGER NOT NULL,
	last_heartbeat INTEGER,
	revoked_at     INTEGER
) STRICT;
CREATE INDEX devices_machine_id ON devices (machine_id);

CREATE TABLE certificates (
	serial                 TEXT PRIMARY KEY,
	device_id              TEXT NOT NULL REFERENCES devices (id),
	public_key_fingerprint TEXT NOT NULL,
	not_before             INTEGER NOT NULL,
	not_after              INTEGER NOT NULL,
	der                    BLOB NOT NULL
) STRICT;
CREATE INDEX certificates_device_id ON certificates (device_id);

CREATE TABLE install_keys (
	hash        BLOB PRIMARY KEY,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	note        TEXT NOT NULL DEFAULT '',
	used_at     INTEGER,
	used_by     TEXT,                                  -- CSR public key fingerprint
	device_id   TEXT REFERENCES devices (id),
	cert_serial TEXT REFERENCES certificates (serial)  -- issued at enrollment
) STRICT;

CREATE TABLE desired_configs (
	device_id  TEXT PRIMARY KEY REFERENCES devices (id),
	generation INTEGER NOT NULL,
	captures   TEXT NOT NULL, -- JSON array of captures
	updated_at INTEGER
) STRICT;

CREATE TABLE statuses (
	device_id          TEXT PRIMARY KEY REFERENCES devices (id),
	received_at        INTEGER NOT NULL,
	applied_generation INTEGER NOT NULL,
	document           TEXT NOT NULL -- JSON, as the agent sent it
) STRICT;
