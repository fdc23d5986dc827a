package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

const initUsage = `usage: ringtap-console init --data DIR [--db URL] [--json]

Creates DIR (mode 0700), the console's CA in it (ECDSA P-256: ca.key 0600,
ca.pem) and an admin token. The token is printed once, with the CA's
SHA-256 fingerprint, which agents pin at enrollment. With --db the token is
stored in that PostgreSQL database, else in DIR/console.db (SQLite).

`

// initResult is what init prints with --json.
type initResult struct {
	AdminToken    string `json:"admin_token"`
	CAFingerprint string `json:"ca_fingerprint"`
}

func runInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, initUsage); fs.PrintDefaults() }
	dir := fs.String("data", "", "the console's data directory (created, mode 0700)")
	db := fs.String("db", "", "PostgreSQL URL (postgres://...); default SQLite in the data directory")
	asJSON := fs.Bool("json", false, `print {"admin_token": ..., "ca_fingerprint": ...}`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *dir == "" {
		return fmt.Errorf("%w: --data DIR is required: the directory for the CA and the database", errUsage)
	}
	if *db != "" && !console.IsPostgres(*db) {
		return fmt.Errorf("%w: %w", errUsage, console.ErrBadDB)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	ca, err := pki.Init(*dir)
	if errors.Is(err, pki.ErrExists) {
		return fmt.Errorf("%s already holds a console CA: serve it with `ringtap-console serve --data %s`, or init another directory", *dir, *dir)
	} else if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := console.OpenStore(ctx, *dir, *db, store.Options{})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	token, _ := pki.NewAdminToken()
	if err := st.CreateAdminToken(ctx, store.AdminToken{Hash: store.HashSecret(token), Name: "init", CreatedAt: time.Now()}); err != nil {
		return fmt.Errorf("store the admin token: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(initResult{AdminToken: token, CAFingerprint: ca.Fingerprint()})
	}
	fmt.Fprintf(stdout, `Console initialized in %s.

Admin token (shown once; keep it safe):
  %s

CA fingerprint (agents pin it with --ca-fingerprint):
  %s

Next: ringtap-console serve --data %s
`, *dir, token, ca.Fingerprint(), *dir)
	return nil
}
