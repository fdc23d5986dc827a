// Package sqlite is the console's embedded store: one SQLite file
// (modernc.org/sqlite, pure Go, no cgo) in the console's data directory.
//
// The file is created with mode 0600 and opened in WAL mode, with a busy
// timeout, foreign keys on, one writing connection (every write
// transaction is BEGIN IMMEDIATE, so writers queue instead of failing)
// and a few reading ones. One process owns the file: Open takes an
// exclusive lock on FILE.lock and refuses a second console on the same
// data directory. That is what lets the change feed stay in process:
// PutCaptures wakes the WaitForChange calls of this Store directly.
//
// The schema is versioned by the embedded migrations/NNNN_name.sql,
// applied in order in one transaction and recorded in schema_migrations.
package sqlite
