// Package storetest is the one test suite of store.Store: every backend
// runs Run, and a backend that several consoles share (PostgreSQL) runs
// RunShared with two Stores on one database.
//
// The suite covers every method and its error paths: install keys
// consumed once under concurrency and replayed for the same public key
// within store.EnrollRetryWindow, devices with duplicate machine ids kept
// apart, states derived at read, revocation, certificate renewal by the
// same key only, generations and ErrStaleGeneration, heartbeats, admin
// tokens, and a change feed that wakes a waiter within a second.
package storetest
