package consoleload

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/bench"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
)

// Usage is what the console (and PostgreSQL's server) used over a phase.
type Usage struct {
	Seconds float64 `json:"seconds"`
	// ConsoleCPUSec is the console process's CPU time; ConsoleCores the
	// same per second of the phase. ConsoleRSSMiB is its resident set at
	// the phase's end.
	ConsoleCPUSec float64 `json:"console_cpu_seconds"`
	ConsoleCores  float64 `json:"console_cores"`
	ConsoleRSSMiB float64 `json:"console_rss_mib"`
	// The PostgreSQL server's processes: CPU and proportional set size
	// (shared buffers counted once) at the end; zero with SQLite.
	DBCPUSec float64 `json:"db_cpu_seconds,omitempty"`
	DBCores  float64 `json:"db_cores,omitempty"`
	DBPssMiB float64 `json:"db_pss_mib,omitempty"`
}

// meter samples the console process and the database server.
type meter struct {
	console int
	db      *pgtest.Cluster // nil: SQLite
}

type sample struct {
	at     time.Time
	cpu    time.Duration
	rssKiB int64
	dbCPU  map[int]time.Duration
	dbPss  int64 // KiB
}

func (m *meter) sample() (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.cpu, err = bench.ProcessCPU(m.console); err != nil {
		return s, fmt.Errorf("console cpu: %w", err)
	}
	if s.rssKiB, err = statusKiB(m.console, "VmRSS"); err != nil {
		return s, err
	}
	if m.db == nil {
		return s, nil
	}
	pids, err := m.db.ServerPIDs()
	if err != nil {
		return s, err
	}
	s.dbCPU = map[int]time.Duration{}
	for _, pid := range pids {
		c, err := bench.ProcessCPU(pid)
		if err != nil {
			continue // exited
		}
		s.dbCPU[pid] = c
		if pss, err := pssKiB(pid); err == nil {
			s.dbPss += pss
		}
	}
	return s, nil
}

// usage is what was used between a and b. A server process that started
// in between counts whole; one that ended in between is not counted (the
// console's pool keeps its connections).
func usage(a, b sample) Usage {
	u := Usage{Seconds: b.at.Sub(a.at).Seconds()}
	u.ConsoleCPUSec = (b.cpu - a.cpu).Seconds()
	u.ConsoleCores = u.ConsoleCPUSec / u.Seconds
	u.ConsoleRSSMiB = float64(b.rssKiB) / 1024
	if b.dbCPU != nil {
		var d time.Duration
		for pid, c := range b.dbCPU {
			d += c - a.dbCPU[pid]
		}
		u.DBCPUSec = d.Seconds()
		u.DBCores = u.DBCPUSec / u.Seconds
		u.DBPssMiB = float64(b.dbPss) / 1024
	}
	return u
}

// statusKiB reads a "Name: N kB" line of /proc/PID/status.
func statusKiB(pid int, name string) (int64, error) {
	return kiBField(fmt.Sprintf("/proc/%d/status", pid), name)
}

// pssKiB is a process's proportional set size.
func pssKiB(pid int) (int64, error) {
	return kiBField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
}

func kiBField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}
