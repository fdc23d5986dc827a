CREATE TABLE admin_tokens (
	hash       bytea PRIMARY KEY,
	name       text NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE TABLE devices (
	id             text PRIMARY KEY,
	hostname       text NOT NULL,
	machine_id     text NOT NULL,
	agent_version  text NOT NULL,
	interfaces     jsonb NOT NULL DEFAULT '[]', -- array of names
	enrolled_at    timestamptz NOT NULL,
	cert_serial    text NOT NULL,               -- the current certificate
	cert_not_after timestamptz NOT NULL,
	last_heartbeat timestamptz,
	revoked_at     timestamptz
);
CREATE INDEX devices_machine_id ON devices (machine_id);

CREATE TABLE certificates (
	serial                 text PRIMARY KEY,
	device_id              text NOT NULL REFERENCES devices (id),
	public_key_fingerprint text NOT NULL,
	not_before             timestamptz NOT NULL,
	not_after              timestamptz NOT NULL,
	der                    bytea NOT NULL
);
CREATE INDEX certificates_device_id ON certificates (device_id);

CREATE TABLE install_keys (
	hash        bytea PRIMARY KEY,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	note        text NOT NULL DEFAULT '',
	used_at     timestamptz,
	used_by     text,                                  -- CSR public key fingerprint
	device_id   text REFERENCES devices (id),
	cert_serial text REFERENCES certificates (serial)  -- issued at enrollment
);

CREATE TABLE desired_configs (
	device_id  text PRIMARY KEY REFERENCES devices (id),
	generation bigint NOT NULL,
	captures   jsonb NOT NULL, -- array of captures
	updated_at timestamptz
);

CREATE TABLE statuses (
	device_id          text PRIMARY KEY REFERENCES devices (id),
	received_at        timestamptz NOT NULL,
	applied_generation bigint NOT NULL,
	document           jsonb NOT NULL -- as the agent sent it
);
