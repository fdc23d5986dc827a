package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/storage"
)

func TestJobs(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want Jobs
	}{
		{"absent", "", Jobs{MaxConcurrent: 2, MaxBytes: 2 << 30, MinFree: storage.Space{Percent: 5}}},
		{"empty", "jobs: {}\n", Jobs{MaxConcurrent: 2, MaxBytes: 2 << 30, MinFree: storage.Space{Percent: 5}}},
		{"all", "jobs:\n  max_concurrent: 4\n  dir: /srv/jobs/\n  max_bytes: 10GB\n  min_free: 20GiB\n",
			Jobs{MaxConcurrent: 4, Dir: "/srv/jobs", MaxBytes: 10e9, MinFree: storage.Space{Bytes: 20 << 30}}},
		{"percent", "jobs:\n  min_free: 12.5%\n", Jobs{MaxConcurrent: 2, MaxBytes: 2 << 30, MinFree: storage.Space{Percent: 12.5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file), "agent.yaml", WithoutCaptures(), WithCPUs(testCPUs))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, c.Jobs); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJobsBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want []string
	}{
		{"unknown key", "jobs:\n  max_concurent: 3\n", []string{
			`agent.yaml:2:3: jobs.max_concurent: unknown key: did you mean max_concurrent?`}},
		{"unknown key far", "jobs:\n  spool: /x\n", []string{
			`agent.yaml:2:3: jobs.spool: unknown key: jobs has the keys max_concurrent, dir, max_bytes and min_free`}},
		{"not a mapping", "jobs: 3\n", []string{
			`agent.yaml:1:7: jobs: want jobs, a mapping with keys such as max_concurrent and dir, not 3`}},
		{"zero concurrent", "jobs:\n  max_concurrent: 0\n", []string{
			`agent.yaml:2:19: jobs.max_concurrent: 0 is out of range: use 1 to 64`}},
		{"concurrent not a number", "jobs:\n  max_concurrent: many\n", []string{
			`agent.yaml:2:19: jobs.max_concurrent: "many" is not a whole number: use 1 to 64`}},
		{"relative dir", "jobs:\n  dir: jobs\n", []string{
			`agent.yaml:2:8: jobs.dir: "jobs" is not an absolute path: write it from /`}},
		{"bad size", "jobs:\n  max_bytes: lots\n", []string{
			`agent.yaml:2:14: jobs.max_bytes: size "lots": want a number of bytes with an optional unit such as KB, MB, GB, KiB, MiB or GiB`}},
		{"tiny budget", "jobs:\n  max_bytes: 4KiB\n", []string{
			`agent.yaml:2:14: jobs.max_bytes: 4KiB is below 1MiB, too small for a capture: give a budget such as 2GB`}},
		{"bad min_free", "jobs:\n  min_free: 150%\n  max_concurrent: 99\n", []string{
			`agent.yaml:2:13: jobs.min_free: ` + spaceErr(t, "150%"),
			`agent.yaml:3:19: jobs.max_concurrent: 99 is out of range: use 1 to 64`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file), "agent.yaml", WithoutCaptures(), WithCPUs(testCPUs))
			if c != nil {
				t.Errorf("Parse returned a config with the error %v", err)
			}
			if diff := cmp.Diff(tc.want, messages(err)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

// spaceErr is storage's message for a bad min_free.
func spaceErr(t *testing.T, s string) string {
	t.Helper()
	_, err := storage.ParseSpace(s)
	if err == nil {
		t.Fatalf("ParseSpace(%q) accepted it", s)
	}
	return err.Error()
}

func TestJobsDirIn(t *testing.T) {
	if got := (Jobs{}).DirIn("/var/lib/ringtap"); got != "/var/lib/ringtap/jobs" {
		t.Errorf("DirIn without dir = %q, want /var/lib/ringtap/jobs", got)
	}
	if got := (Jobs{Dir: "/srv/jobs"}).DirIn("/var/lib/ringtap"); got != "/srv/jobs" {
		t.Errorf("DirIn with dir = %q, want /srv/jobs", got)
	}
}
