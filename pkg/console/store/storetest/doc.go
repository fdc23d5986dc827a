// Package storetest is the one test suite of store.Store: every backend
// runs Run, and a backend that several consoles share (PostgreSQL) runs
// RunShared with two Stores on one database, and every backend runs
// RunRestart, which closes a Store and opens another on its database.
//
// The suite covers every method and its error paths: install keys
// consumed once under concurrency and replayed for the same public key
// within store.EnrollRetryWindow, devices with duplicate machine ids kept
// apart, states derived at read, revocation, certificate renewal by the
// same key only, generations and ErrStaleGeneration, heartbeats, admin
// tokens, a change feed that wakes a waiter within a second, and capture
// jobs: ids in creation order, runs claimed by exactly one of racing
// claims (also across consoles), every transition RunState.CanBecome
// allows and none other, idempotent repeats of terminal states, cancel,
// expiry and silence ending each run once, results attached once, the
// JobsSeq that wakes WaitForChanges, and jobs kept across a restart.
package storetest
