// Package store is the console's storage: the Store interface that the
// console's APIs use, the records it keeps, and the errors it returns.
//
// Two backends implement it: store/sqlite, the embedded default (one
// console process owns a file in its data directory), and store/postgres,
// for fleets served by several console processes on one database. One
// suite, store/storetest, runs against both.
//
// What every Store promises:
//   - Secrets are never stored: install keys and admin tokens are kept as
//     the SHA-256 of the secret (Hash), and looked up by it.
//   - An install key is consumed once, atomically, also when several
//     consoles share a database; a retried enrollment with the same CSR
//     public key within EnrollRetryWindow gets the device and certificate
//     already issued instead of a burnt key.
//   - Two agents with the same machine id are two devices, never merged;
//     DuplicateMachineIDs lists them for a warning.
//   - A device's desired config has a generation that increases on every
//     change; PutCaptures takes the generation it expects and returns
//     ErrStaleGeneration when another change came first (HTTP 409).
//   - WaitForChange wakes within a second of a change made through any
//     Store on the same database.
//   - A job's run is claimed by exactly one claim token, also when
//     several consoles share a database; every transition of a run is
//     kept with its time and reason, and a terminal state is final.
//   - Device states are derived when read, from the time given: online,
//     stale (no heartbeat within Options.StaleAfter) or revoked.
//   - Times are returned in UTC, at microsecond precision or better; a zero
//     time means "never".
//   - Errors wrap the sentinels of errors.go, so errors.Is works on them.
//
// Schemas are versioned: each backend applies its embedded migrations in
// order, in one transaction, and refuses (ErrSchemaTooNew) a database that
// a newer console has migrated beyond what this binary knows.
package store
