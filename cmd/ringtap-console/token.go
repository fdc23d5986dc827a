package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringtap/ringtap/pkg/console"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/sqlite"
)

const tokenUsage = `usage: ringtap-console token create --data DIR [--db URL] --name NAME [--json]
       ringtap-console token list   --data DIR [--db URL] [--json]
       ringtap-console token revoke --data DIR [--db URL] ID

Manages the admin tokens in the console's store directly, for when no
token is at hand: the first one lost, or a token to revoke at once. A
running console takes the change with its next request. With SQLite the
serving console holds the database, so stop it first, or use the admin
API with a token you have (POST, GET and DELETE /api/v1/admin-tokens).
A new token is printed once; the store keeps only its hash. The last
token cannot be revoked: create its successor first.

`

// tokenView is a token as token list --json prints it.
type tokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// tokenCreated is what token create --json prints.
type tokenCreated struct {
	tokenView
	Token string `json:"token"`
}

func runToken(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, tokenUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: token needs create, list or revoke", errUsage)
		}
		return nil
	}
	verb := args[0]
	if verb != "create" && verb != "list" && verb != "revoke" {
		fmt.Fprint(stderr, tokenUsage)
		return fmt.Errorf("%w: unknown token command %q: use create, list or revoke", errUsage, verb)
	}
	fs := flag.NewFlagSet("token "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage); fs.PrintDefaults() }
	dir := fs.String("data", "", "the console's data directory")
	db := fs.String("db", "", "PostgreSQL URL (postgres://...); default SQLite in the data directory")
	name := fs.String("name", "", "create: who or what will use the token (\"ci\", \"alice\")")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var id string
	switch {
	case verb == "revoke" && fs.NArg() != 1:
		return fmt.Errorf("%w: token revoke takes one token id, as token list prints it", errUsage)
	case verb == "revoke":
		id = fs.Arg(0)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *dir == "" {
		return fmt.Errorf("%w: --data DIR is required: the console's data directory", errUsage)
	}
	if *db != "" && !console.IsPostgres(*db) {
		return fmt.Errorf("%w: %w", errUsage, console.ErrBadDB)
	}
	*name = strings.TrimSpace(*name)
	if verb == "create" {
		if err := console.ValidTokenName(*name); err != nil {
			return fmt.Errorf("%w: --%w", errUsage, err)
		}
	} else if *name != "" {
		return fmt.Errorf("%w: --name is for token create", errUsage)
	}
	if *db == "" {
		// Opening SQLite would create a database: only a console's own.
		if _, err := os.Stat(filepath.Join(*dir, console.DBFile)); err != nil {
			return fmt.Errorf("%s holds no console database (%v): give the directory `ringtap-console init` created, or --db for PostgreSQL", *dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := console.OpenStore(ctx, *dir, *db, store.Options{})
	if errors.Is(err, sqlite.ErrInUse) {
		return fmt.Errorf("a ringtap-console serving %s holds its database: manage tokens through its admin API (/api/v1/admin-tokens), or stop it and run this again", *dir)
	} else if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	switch verb {
	case "create":
		return tokenCreate(ctx, st, *name, *asJSON, stdout)
	case "list":
		return tokenList(ctx, st, *asJSON, stdout)
	}
	return tokenRevoke(ctx, st, id, stdout)
}

func tokenCreate(ctx context.Context, st store.Store, name string, asJSON bool, stdout io.Writer) error {
	token, _ := pki.NewAdminToken()
	t := store.AdminToken{Hash: store.HashSecret(token), Name: name, CreatedAt: time.Now()}
	if err := st.CreateAdminToken(ctx, t); err != nil {
		return fmt.Errorf("store the admin token: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	v := tokenCreated{tokenView: viewToken(t), Token: token}
	if asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	fmt.Fprintf(stdout, "Admin token %s (%s), shown once; keep it safe:\n  %s\n", v.ID, name, token)
	return nil
}

func tokenList(ctx context.Context, st store.Store, asJSON bool, stdout io.Writer) error {
	tokens, err := st.ListAdminTokens(ctx)
	if err != nil {
		return err
	}
	out := make([]tokenView, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, viewToken(t))
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"admin_tokens": out})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED")
	for _, v := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.ID, v.Name, v.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, st store.Store, id string, stdout io.Writer) error {
	tokens, err := st.ListAdminTokens(ctx)
	if err != nil {
		return err
	}
	match := store.TokensWithID(tokens, strings.ToLower(id))
	switch len(match) {
	case 0:
		return fmt.Errorf("no admin token has id %q: `ringtap-console token list` shows the ids", id)
	case 1:
	default:
		return fmt.Errorf("%d admin tokens share id %s, so it cannot tell which to revoke: nothing was revoked", len(match), id)
	}
	err = st.DeleteAdminToken(ctx, match[0].Hash)
	if errors.Is(err, store.ErrLastToken) {
		return fmt.Errorf("admin token %s (%s) is the last one: create its successor first (ringtap-console token create), then revoke it", id, match[0].Name)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Admin token %s (%s) revoked.\n", id, match[0].Name)
	return nil
}

func viewToken(t store.AdminToken) tokenView {
	return tokenView{ID: t.Hash.ID(), Name: t.Name, CreatedAt: t.CreatedAt.UTC()}
}
