package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/ringtap/ringtap/pkg/storage"
)

// runRecover is `ringtap recover DIR...`: it finishes the temporary files
// a crashed capture left (what `ringtap capture` does by itself when it
// starts in the same directory) and prints one line per file.
func runRecover(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ringtap recover DIR [DIR ...]")
		fmt.Fprintln(stderr, "Finishes the torn temporary files (.NAME.part) a crashed capture left in each DIR and its")
		fmt.Fprintln(stderr, "subdirectories: every complete packet is kept, the torn end cut, and the file renamed to NAME.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: give the directory to recover", errUsage)
	}
	quiet := slog.New(slog.DiscardHandler) // every file gets its line below
	var failed int
	for _, dir := range fs.Args() {
		rep, err := storage.Recover(dir, quiet)
		if err != nil {
			return err
		}
		if len(rep) == 0 {
			fmt.Fprintf(stdout, "%s: nothing to recover\n", dir)
		}
		for _, rf := range rep {
			fmt.Fprintln(stdout, rf)
			if rf.Err != nil {
				failed++
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d files could not be recovered", failed)
	}
	return nil
}
