package store

import (
	"encoding/json"
	"time"
)

// Status is a device's last heartbeat.
type Status struct {
	// Time is when the console received it.
	Time time.Time
	// AppliedGeneration is the desired config generation the agent runs.
	AppliedGeneration int64
	// Hostname, AgentVersion and Interfaces update the device record.
	Hostname     string
	AgentVersion string
	Interfaces   []string
	// Document is the heartbeat as the agent sent it (per-capture state
	// and counters, interfaces, errors), JSON. The store checks that it is
	// JSON and returns it equivalent, not byte for byte (PostgreSQL
	// normalizes jsonb).
	Document json.RawMessage
}
