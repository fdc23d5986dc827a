package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ringtap/ringtap/pkg/certmgr"
)

const enrollUsage = `usage: ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256 [--state DIR]

Enrolls this agent with a console: it makes a private key here (never
sent), sends a certificate request with the install key, and pins the
console's CA by its fingerprint. Copy the command the console printed
when the install key was made. Then run ` + "`ringtap agent`" + `: it takes
its captures from the console.
`

// runEnroll is `ringtap agent enroll`.
func runEnroll(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, enrollUsage); fs.PrintDefaults() }
	console := fs.String("console", "", "the console's agent API, https://HOST[:PORT]")
	key := fs.String("key", "", "the install key the console printed (rtk_...)")
	fp := fs.String("ca-fingerprint", "", "the console CA's SHA-256 fingerprint (sha256:...)")
	state := fs.String("state", certmgr.DefaultStateDir, "the agent's state directory (key, certificate, last applied config)")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var missing []string
	for name, v := range map[string]string{"--console": *console, "--key": *key, "--ca-fingerprint": *fp} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%w: agent enroll needs %s: copy the enroll command the console printed for the install key", errUsage, strings.Join(missing, ", "))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, *level)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	host, _ := os.Hostname()
	e, err := certmgr.Enroll(ctx, certmgr.EnrollConfig{
		ConsoleURL: *console, InstallKey: *key, CAFingerprint: *fp, StateDir: *state,
		Hostname: host, MachineID: machineID(), AgentVersion: version, Interfaces: interfaceNames(),
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})),
	})
	if err != nil {
		return enrollError(*console, *state, err)
	}
	fmt.Fprintf(stdout, "enrolled as device %s with %s (certificate valid until %s); state in %s\n",
		e.DeviceID, e.ConsoleURL, e.NotAfter.UTC().Format(time.RFC3339), *state)
	return nil
}

// enrollError turns an enrollment failure into one sentence that says
// what to do.
func enrollError(console, state string, err error) error {
	var apiErr *certmgr.APIError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, certmgr.ErrFingerprintMismatch):
		return fmt.Errorf("%w: the console at %s is not the one pinned by --ca-fingerprint: check the fingerprint against the output of `ringtap-console init` (nothing was sent)", errUsage, console)
	case errors.Is(err, certmgr.ErrBadConsoleURL), errors.Is(err, certmgr.ErrBadInstallKey):
		return fmt.Errorf("%w: %w", errUsage, err)
	case errors.As(err, &apiErr) && apiErr.Refused():
		return fmt.Errorf("%w: the console refused the install key (%s): create a new one with POST /api/v1/install-keys or the console's page, and run the enroll command it prints", errUsage, apiErr.Message)
	case errors.As(err, &apiErr):
		return fmt.Errorf("%w: the console could not enroll this agent (%s): try again; the same install key still works for a few minutes", errUsage, apiErr.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &opErr), errors.As(err, &netErr):
		return fmt.Errorf("%w: cannot reach the console at %s (%v): check the URL and that its agent listener is reachable from here", errUsage, console, rootCause(err))
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: cannot write the state directory %s (%v): run as root or choose another --state", errUsage, state, rootCause(err))
	}
	return fmt.Errorf("agent enroll: %w", err)
}

// rootCause is the innermost error of a chain of single wraps.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// machineID is /etc/machine-id, or "" where there is none.
func machineID() string {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if id := strings.TrimSpace(string(b)); id != "" {
				return id
			}
		}
	}
	return ""
}

// interfaceNames are the names of the interfaces of the agent's network
// namespace.
func interfaceNames() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	sort.Strings(out)
	return out
}
