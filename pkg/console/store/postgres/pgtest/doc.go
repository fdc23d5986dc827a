// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb in
// a temporary directory as the postgres user, a server listening on a
// Unix socket only, a fresh database per caller, everything removed
// afterwards.
//
// Start gives a test a database of its own. A package whose tests call it
// shares one cluster by running its tests through Main:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without Main, each Start runs a cluster of its own (slower, same
// result). Tests skip without root or without the server binaries
// (Debian's postgresql, which hack/deps.sh installs), and fail instead
// under CI=true.
package pgtest
