package store

import (
	"io"
	"log/slog"
	"time"
)

// DefaultHeartbeatInterval is how often agents are expected to send a
// heartbeat.
const DefaultHeartbeatInterval = 10 * time.Second

// DefaultStaleAfter is how long a device stays online after its last
// heartbeat: three heartbeats missed.
const DefaultStaleAfter = 3 * DefaultHeartbeatInterval

// EnrollRetryWindow is how long after an install key's first use a retry
// with the same public key gets the same enrollment back.
const EnrollRetryWindow = 10 * time.Minute

// Options are the settings a backend is opened with.
type Options struct {
	// StaleAfter is how long after its last heartbeat a device is stale;
	// 0 is DefaultStaleAfter.
	StaleAfter time.Duration
	// Logger receives what the store cannot return: a lost notification
	// connection and its reconnection. Nil discards.
	Logger *slog.Logger
}

// WithDefaults returns o with its zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}
