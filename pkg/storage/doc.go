// Package storage turns a stream of captured packets into files that last:
// rotation by size, time and count, a hidden temporary name renamed once a
// file is complete and synced, compression, retention of a bounded window
// on local disk, and recovery of torn files after a crash.
package storage
