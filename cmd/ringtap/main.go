// Command ringtap captures packets with eBPF into pcapng/pcap files.
//
//	ringtap capture -i IFACE [flags] [EXPRESSION]
//	ringtap agent [--config FILE] [--state DIR] [--check]
//	ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256 [--state DIR]
//	ringtap filter explain EXPRESSION
//	ringtap filter test -r FILE [-w OUT] EXPRESSION
//	ringtap recover DIR
//	ringtap version
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// version is set by the Makefile with -ldflags -X main.version=$(git describe).
var version = "dev"

// errUsage marks errors whose message already says everything; main prints
// it without a stack of context.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintf(os.Stderr, "ringtap: %v\n", err)
		}
		os.Exit(1)
	}
}

// errSilent: the command already reported the problem.
var errSilent = errors.New("reported")

const usage = `usage: ringtap <command> [flags]

commands:
  capture   capture packets into a pcapng or pcap file (a demo when no -i is given)
  agent     run captures as a service, from a configuration file or an enrolled console
            (ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256)
  filter    explain or test a tcpdump filter expression
  recover   finish the torn files a crashed capture left in a directory
  version   print the version

Run 'ringtap <command> -h' for the flags of a command.
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "capture":
		return runCapture(args[1:], stdout, stderr)
	case "agent":
		return runAgent(args[1:], stdout, stderr)
	case "filter":
		return runFilter(args[1:], stdout, stderr)
	case "recover":
		return runRecover(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "ringtap %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
