package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	dir    string // removed by Stop
	bin    string // of initdb, pg_ctl, postgres
	socket string // directory of the Unix socket
	dbs    atomic.Int64
}

var (
	shared struct {
		sync.Mutex
		inMain  bool
		cluster *Cluster
		err     error
	}
)

// Main runs m's tests, with one cluster for all their Start calls, and
// stops the cluster afterwards. It returns m.Run's code.
func Main(m *testing.M) int {
	shared.Lock()
	shared.inMain = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	defer shared.Unlock()
	if c := shared.cluster; c != nil {
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Start returns the URL (postgres://...) of a new, empty database, which
// t's cleanup drops. It skips t (fails it under CI=true) when PostgreSQL
// cannot run here.
func Start(t testing.TB) string {
	t.Helper()
	c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := fmt.Sprintf("test_%d", c.dbs.Add(1))
	if err := c.exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.exec(ctx, "DROP DATABASE "+db+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	return c.URL(db)
}

// cluster returns the shared cluster under Main, else one for t alone.
func cluster(t testing.TB) *Cluster {
	t.Helper()
	if reason := unavailable(); reason != "" {
		testbedtest.SkipOrFail(t, "%s", reason)
	}
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		c, err := StartCluster()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Stop(); err != nil {
				t.Error(err)
			}
		})
		return c
	}
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = StartCluster()
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster
}

// unavailable says why a cluster cannot run here, or "".
func unavailable() string {
	if os.Geteuid() != 0 {
		return "PostgreSQL tests need root (to run initdb as the postgres user)"
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "PostgreSQL tests need the postgres user: install Debian's postgresql (hack/deps.sh)"
	}
	if _, err := binDir(); err != nil {
		return err.Error()
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return "PostgreSQL tests need runuser (util-linux)"
	}
	return ""
}

// binDir finds the server binaries: the newest /usr/lib/postgresql/N/bin
// (Debian's layout), else the directory initdb on PATH resolves to.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			d := filepath.Dir(r)
			if isExec(filepath.Join(d, "pg_ctl")) && isExec(filepath.Join(d, "postgres")) {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install Debian's postgresql (hack/deps.sh)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// StartCluster runs initdb in a new temporary directory and starts a
// server there on a Unix socket, with durability off (it is thrown
// away). Stop it with Stop.
func StartCluster() (*Cluster, error) { return StartClusterWith(ClusterOptions{}) }

// ClusterOptions change how StartClusterWith runs the server.
type ClusterOptions struct {
	// Durable keeps PostgreSQL's own defaults for durability (fsync,
	// synchronous_commit and full_page_writes on), for benchmarks that
	// compare stores as users run them. Without it the cluster trades
	// them for speed, as tests want.
	Durable bool
}

// StartClusterWith starts a cluster with o: see StartCluster.
func StartClusterWith(o ClusterOptions) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Not t.TempDir: its parents are root's, 0700.
	dir, err := os.MkdirTemp("", "ringtap-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres cluster: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, socket: filepath.Join(dir, "sock")}
	fail := func(err error) (*Cluster, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Mkdir(c.socket, 0o700); err != nil {
		return fail(fmt.Errorf("postgres cluster: %w", err))
	}
	for _, p := range []string{dir, c.socket} {
		if err := os.Chown(p, uid, gid); err != nil {
			return fail(fmt.Errorf("postgres cluster: %w", err))
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}
	settings := []string{"-k " + c.socket, "-c listen_addresses=''", "-c max_connections=200"}
	if !o.Durable {
		settings = append(settings, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	opts := strings.Join(settings, " ")
	if out, err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "30", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return fail(fmt.Errorf("start postgres: %w\n%s\n%s", err, out, log))
	}
	return c, nil
}

// run runs one of the server binaries as the postgres user.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// URL is the address of database db of c.
func (c *Cluster) URL(db string) string {
	return "postgres://postgres@/" + db + "?host=" + url.QueryEscape(c.socket) + "&sslmode=disable"
}

// exec runs one statement in the postgres database.
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the test cluster: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// ServerPIDs are the processes of the server now: the postmaster (from
// postmaster.pid) and its children (backends, checkpointer, WAL writer
// ...), for measuring what the server costs.
func (c *Cluster) ServerPIDs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "data", "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("postgres server pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("postgres server pid: postmaster.pid starts with %q", line)
	}
	pids := []int{pm}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at
		// the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pm) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() error {
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	if rerr := os.RemoveAll(c.dir); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("stop postgres cluster %s: %w\n%s", c.dir, err, out)
	}
	return nil
}
