// Command ringtap-console is the ringtap console: enrollment and the
// agent API (mTLS), the admin API and the web page (HTTPS, bearer
// token), over SQLite in its data directory or PostgreSQL.
//
//	ringtap-console init --data DIR [--db URL] [--json]
//	ringtap-console serve --data DIR [--agent-listen ADDR] [--admin-listen ADDR] [--db URL] [--hosts NAME,IP,...]
//	ringtap-console token create|list|revoke --data DIR [--db URL] ...
//	ringtap-console job run --console URL --token T --ca-fingerprint FP --device D --interface I [-w FILE|-] [EXPRESSION...]
//	ringtap-console job list|show ID|cancel ID
//	ringtap-console version
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// version is set by the Makefile with -ldflags -X main.version=$(git describe).
var version = "dev"

// errUsage marks errors whose message says everything already.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "ringtap-console: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

const usage = `usage: ringtap-console <command> [flags]

commands:
  init      create the data directory, the console's CA and an admin token
  serve     serve the agent API and the admin API with the web page
  token     admin tokens: create, list, revoke (offline, or with PostgreSQL)
  job       capture jobs: run one and follow its live stream, list, show, cancel
  version   print the version

Run 'ringtap-console <command> -h' for the flags of a command.
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "init":
		return runInit(args[1:], stdout, stderr)
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "job":
		return runJob(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "ringtap-console %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
