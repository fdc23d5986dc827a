package pcapmgr_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/jobrunner"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

// family is one metric family as a Markdown metrics table states it.
type family struct{ typ, labels string }

var backticked = regexp.MustCompile("`([^`]+)`")

// mustParseMetricsTable reads the first Markdown table of md whose header
// begins with "| metric | type |": metric name → type and labels (""
// when the table has no labels column). A row may name several families
// ("`a`, `b`"), which then share its type and labels.
func mustParseMetricsTable(t *testing.T, what, md string) map[string]family {
	t.Helper()
	lines := strings.Split(md, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "| metric | type |") {
			start = i
			break
		}
	}
	if start < 0 || start+1 >= len(lines) {
		t.Fatalf("%s: no table with the header | metric | type | ...", what)
	}
	header := cells(lines[start])
	labelsCol := -1
	for i, h := range header {
		if h == "labels" {
			labelsCol = i
		}
	}
	out := map[string]family{}
	for _, l := range lines[start+2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		c := cells(l)
		if len(c) < len(header) {
			t.Errorf("%s: row of %d cells under a header of %d: %s", what, len(c), len(header), l)
			continue
		}
		f := family{typ: c[1]}
		if labelsCol >= 0 {
			f.labels = c[labelsCol]
		}
		names := backticked.FindAllStringSubmatch(c[0], -1)
		if len(names) == 0 {
			t.Errorf("%s: row names no metric: %s", what, l)
		}
		for _, n := range names {
			if _, dup := out[n[1]]; dup {
				t.Errorf("%s: %s has two rows", what, n[1])
			}
			out[n[1]] = f
		}
	}
	return out
}

// cells splits a Markdown table row into its trimmed cells.
func cells(row string) []string {
	parts := strings.Split(strings.TrimSpace(row), "|")
	if len(parts) < 2 {
		return nil
	}
	parts = parts[1 : len(parts)-1] // before the first and after the last |
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// README.md's agent metrics table (under "HTTP: metrics, health, status")
// lists every metric family `ringtap agent` writes on /metrics, with its
// type and labels, and nothing else: the agent's own (pkg/agent), the
// pcap manager's (exports and shared interfaces), the certificate
// manager's and the job runner's, as each package's MetricsTable lists
// the families its WriteMetrics writes.
func TestREADMEMetricsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got := mustParseMetricsTable(t, "README.md", string(readme))

	sources := []struct{ name, table string }{
		{"pkg/agent", agent.MetricsTable()},
		{"pkg/pcapmgr", pcapmgr.MetricsTable()},
		{"pkg/certmgr", certmgr.MetricsTable()},
		{"pkg/jobrunner", jobrunner.MetricsTable()},
	}
	want := map[string]family{}
	from := map[string]string{}
	for _, s := range sources {
		for name, f := range mustParseMetricsTable(t, s.name+" MetricsTable", s.table) {
			if other, dup := from[name]; dup {
				t.Errorf("%s is defined by %s and %s", name, other, s.name)
			}
			want[name], from[name] = f, s.name
		}
	}
	if len(want) < 30 {
		t.Fatalf("only %d metric families in the code's tables: the parser is broken", len(want))
	}

	var names []string
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w := want[name]
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("README.md's metrics table lacks %s (%s, %s, labels %q)", name, from[name], w.typ, w.labels)
		case g.typ != w.typ:
			t.Errorf("README.md says %s is a %s; %s writes a %s", name, g.typ, from[name], w.typ)
		case g.labels != w.labels && from[name] != "pkg/certmgr": // certmgr's table has no labels column
			t.Errorf("README.md gives %s the labels %q; %s writes %q", name, g.labels, from[name], w.labels)
		case from[name] == "pkg/certmgr" && g.labels != "":
			t.Errorf("README.md gives %s the labels %q; the certificate manager writes none", name, g.labels)
		}
	}
	var extra []string
	for name := range got {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		t.Errorf("README.md's metrics table lists %s, which the agent does not write", name)
	}
}
