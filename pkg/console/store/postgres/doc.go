// Package postgres is the console's store for fleets: a PostgreSQL
// database (jackc/pgx v5) that several console processes share.
//
// Every write is one transaction; what must not race between consoles
// takes a row lock (SELECT ... FOR UPDATE): consuming an install key,
// putting a device's captures, renewing its certificate, claiming or
// updating a job's run. ExpireRuns and FailSilentRuns skip the runs
// another transaction holds (SKIP LOCKED), so consoles calling them at
// once end each run once. The change feed is LISTEN/NOTIFY: PutCaptures,
// RevokeDevice, CreateJob and CancelJob send a notification on
// the channel NotifyChannel, with the device id as payload, in their
// transaction (so it is delivered at commit, and only then); each Store
// holds one dedicated connection that listens and wakes its
// WaitForChange calls. When that connection is lost the Store reconnects
// with backoff and wakes every waiter to read again, so a notification
// lost meanwhile delays nothing.
//
// The schema is versioned by the embedded migrations/NNNN_name.sql,
// applied in order in one transaction under an advisory lock (consoles
// starting together migrate once) and recorded in schema_migrations.
package postgres
