package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMultiFilters(t *testing.T) {
	tests := []struct {
		name string
		mode string
		n    int
		want []string
	}{
		{"single", ModeSingle, 1, []string{"udp src port 40000"}},
		{"disjoint", ModeDisjoint, 3, []string{"udp src port 40000", "udp src port 40001", "udp src port 40002"}},
		{"overlap", ModeOverlap, 2, []string{"udp and not src port 50000", "udp and not src port 50001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MultiFilters(tt.mode, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := MultiFilters("both", 2); err == nil {
		t.Error("unknown filter set accepted")
	}
}

func TestMultiExpected(t *testing.T) {
	tests := []struct {
		name string
		mode string
		n    int
		sent uint64
		want []uint64
	}{
		{"one capture gets everything", ModeSingle, 1, 7, []uint64{7}},
		{"overlap: every capture gets everything", ModeOverlap, 3, 7, []uint64{7, 7, 7}},
		// Frames 1..7 go to ports base+1, +2, +0, +1, +2, +0, +1.
		{"disjoint: round robin from frame 1", ModeDisjoint, 3, 7, []uint64{2, 3, 2}},
		{"disjoint: whole cycles", ModeDisjoint, 4, 8, []uint64{2, 2, 2, 2}},
		{"disjoint: fewer frames than captures", ModeDisjoint, 4, 2, []uint64{0, 1, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, MultiExpected(tt.mode, tt.n, tt.sent)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCounts(t *testing.T) {
	got, err := ParseCounts("1, 4,16")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 4, 16}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "0", "65", "x", "1,,2"} {
		if _, err := ParseCounts(bad); err == nil {
			t.Errorf("ParseCounts(%q) = nil error", bad)
		}
	}
	if _, err := ParseMultiScenarios("monitor,host-xdp"); err == nil || !strings.Contains(err.Error(), `"host-xdp"`) {
		t.Errorf("error %v, want one naming host-xdp", err)
	}
}

func TestSummarizeMultiRatios(t *testing.T) {
	runs := []MultiResult{
		{Scenario: "monitor", Mode: ModeSingle, Captures: 1, Tool: "ringtap", Offered: 10, Records: 10, SystemNsPerPkt: 100, ProcessNsPerPkt: 50, KernelNsPerPkt: 40, Complete: true},
		{Scenario: "monitor", Mode: ModeSingle, Captures: 1, Tool: "tcpdump", Offered: 10, SystemNsPerPkt: 200, ProcessNsPerPkt: 100},
		{Scenario: "monitor", Mode: ModeOverlap, Captures: 4, Tool: "ringtap", Offered: 10, Records: 10, SystemNsPerPkt: 150, ProcessNsPerPkt: 100, KernelNsPerPkt: 40, Complete: true},
		{Scenario: "monitor", Mode: ModeOverlap, Captures: 4, Tool: "ringtap", Offered: 10, Records: 10, SystemNsPerPkt: 250, ProcessNsPerPkt: 100, KernelNsPerPkt: 60, Complete: true},
		{Scenario: "monitor", Mode: ModeOverlap, Captures: 4, Tool: "tcpdump", Offered: 10, SystemNsPerPkt: 800, ProcessNsPerPkt: 400},
		{Scenario: "monitor", Mode: ModeOverlap, Captures: 16, Tool: "ringtap", Error: "verifier"},
	}
	got := SummarizeMulti(runs)
	type row struct {
		Tool                                 string
		Captures, Runs, Failed, Complete     int
		KernelX1, ProcessX1, SystemX1, VsRtp float64
		RecordsPerFrame                      float64
	}
	var rows []row
	for _, s := range got {
		rows = append(rows, row{s.Tool, s.Captures, s.Runs, s.Failed, s.CompleteRuns, s.KernelX1, s.ProcessX1, s.SystemX1, s.SystemVsRingtap, s.RecordsPerFrame})
	}
	want := []row{
		{"ringtap", 1, 1, 0, 1, 1, 1, 1, 0, 1},
		{"tcpdump", 1, 1, 0, 0, 0, 1, 1, 2, 0},
		{"ringtap", 4, 2, 0, 2, 1.25, 2, 2, 0, 1},
		{"tcpdump", 4, 1, 0, 0, 0, 4, 4, 4, 0},
		{"ringtap", 16, 0, 1, 0, 0, 0, 0, 0, 0},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var b strings.Builder
	WriteMultiTable(&b, got)
	if lines := strings.Count(b.String(), "\n"); lines != 2+len(want) {
		t.Errorf("table has %d lines, want header, rule and %d rows:\n%s", lines, len(want), b.String())
	}
}

func TestParseLayouts(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		wantErr  string // part of the error; "" for none
	}{
		{"shared", "shared", []string{LayoutShared}, ""},
		{"both, spaces", "shared, separate", []string{LayoutShared, LayoutSeparate}, ""},
		{"separate first", "separate,shared", []string{LayoutSeparate, LayoutShared}, ""},
		{"unknown", "shared,tcx", nil, `"tcx"`},
		{"empty", "", nil, `""`},
		{"twice", "separate,separate", nil, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLayouts(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLayouts(%q) error %v, want one containing %s", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMultiScenariosHooks(t *testing.T) {
	got, err := ParseMultiScenarios("host-tc, monitor-tc,host")
	if err != nil {
		t.Fatal(err)
	}
	want := []Scenario{{Name: "host-tc", Hook: "tc"}, {Name: "monitor-tc", Monitor: true, Hook: "tc"}, {Name: "host", Hook: "xdp"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var names []string
	for _, sc := range DefaultMultiScenarios {
		names = append(names, sc.Name+"@"+sc.Hook)
	}
	if diff := cmp.Diff([]string{"monitor@xdp", "host@xdp"}, names); diff != "" {
		t.Errorf("default scenarios (-want +got):\n%s", diff)
	}
}

// The two layouts of ringtap are groups of their own: ×1 against the same
// layout's one capture, tcpdump against the shared layout, and the table
// names the separate one.
func TestSummarizeMultiLayouts(t *testing.T) {
	runs := []MultiResult{
		{Scenario: "host-tc", Mode: ModeSingle, Captures: 1, Tool: "ringtap", Layout: LayoutShared, Offered: 10, Records: 10, SystemNsPerPkt: 100, KernelNsPerPkt: 50},
		{Scenario: "host-tc", Mode: ModeSingle, Captures: 1, Tool: "ringtap", Layout: LayoutSeparate, Offered: 10, Records: 10, SystemNsPerPkt: 110, KernelNsPerPkt: 40},
		{Scenario: "host-tc", Mode: ModeOverlap, Captures: 4, Tool: "ringtap", Layout: LayoutShared, Offered: 10, Records: 10, SystemNsPerPkt: 200, KernelNsPerPkt: 100},
		{Scenario: "host-tc", Mode: ModeOverlap, Captures: 4, Tool: "ringtap", Layout: LayoutSeparate, Offered: 10, Records: 40, SystemNsPerPkt: 440, KernelNsPerPkt: 160},
		{Scenario: "host-tc", Mode: ModeOverlap, Captures: 4, Tool: "tcpdump", Offered: 10, SystemNsPerPkt: 800},
	}
	got := SummarizeMulti(runs)
	type row struct {
		Layout                      string
		Captures                    int
		RecordsPerFrame             float64
		KernelX1, SystemX1, VsRtpSh float64
	}
	var rows []row
	for _, s := range got {
		rows = append(rows, row{s.Layout, s.Captures, s.RecordsPerFrame, s.KernelX1, s.SystemX1, s.SystemVsRingtap})
	}
	want := []row{
		{LayoutShared, 1, 1, 1, 1, 0},
		{LayoutSeparate, 1, 1, 1, 1, 0},
		{LayoutShared, 4, 1, 2, 2, 0},
		{LayoutSeparate, 4, 4, 4, 4, 0},
		{"", 4, 0, 0, 0, 4},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var b strings.Builder
	WriteMultiTable(&b, got)
	if n := strings.Count(b.String(), "| ringtap (separate) |"); n != 2 {
		t.Errorf("table names the separate layout in %d rows, want 2:\n%s", n, b.String())
	}
}
