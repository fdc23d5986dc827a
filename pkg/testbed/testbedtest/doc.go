// Package testbedtest holds test helpers around testbed: a skip for tests
// that need privileges which fails instead under CI=true (where a skip would
// hide a regression), a Pair removed at test cleanup, and a listing of the
// BPF programs attached to an interface.
package testbedtest
