package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarizeTakesMedians(t *testing.T) {
	runs := []Result{
		{Scenario: "monitor", Tool: "ringtap", Captured: 10, GenPPS: 3, CPUNsPerPkt: 100},
		{Scenario: "monitor", Tool: "tcpdump", Captured: 7, GenPPS: 1},
		{Scenario: "monitor", Tool: "ringtap", Captured: 30, GenPPS: 1, CPUNsPerPkt: 300},
		{Scenario: "monitor", Tool: "ringtap", Captured: 20, GenPPS: 2, CPUNsPerPkt: 200},
	}
	got := Summarize(runs)
	want := []Summary{
		{Scenario: "monitor", Tool: "ringtap", Runs: 3, Captured: 20, GenPPS: 2, CPUNsPerPkt: 200},
		{Scenario: "monitor", Tool: "tcpdump", Runs: 1, Captured: 7, GenPPS: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var b strings.Builder
	WriteTable(&b, got)
	if lines := strings.Count(b.String(), "\n"); lines != 4 {
		t.Errorf("table has %d lines, want header, rule and 2 rows:\n%s", lines, b.String())
	}
}

func TestMedianEven(t *testing.T) {
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median = %v, want 2.5", m)
	}
	if m := median(nil); m != 0 {
		t.Fatalf("median of nothing = %v", m)
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := ParseScenarios("monitor, reject")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "monitor" || !got[1].Reject {
		t.Fatalf("got %+v", got)
	}
	if _, err := ParseScenarios("nope"); err == nil || !strings.Contains(err.Error(), `unknown scenario "nope"`) {
		t.Fatalf("error %v", err)
	}
	if got, err := ParseScenarios(""); err != nil || got != nil {
		t.Fatalf("empty list: %v %v", got, err)
	}
}

func TestParseVariant(t *testing.T) {
	label, v, err := ParseVariant("generic=bin=/tmp/rt --xdp-mode=generic env:GOMAXPROCS=1")
	if err != nil {
		t.Fatal(err)
	}
	want := Variant{Binary: "/tmp/rt", Args: []string{"--xdp-mode=generic"}, Env: []string{"GOMAXPROCS=1"}}
	if label != "generic" {
		t.Errorf("label %q, want generic", label)
	}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "=x", "nolabel", "tcpdump=--x", "ringtap=--x", "a b=--x", "x=env:NOVALUE"} {
		if _, _, err := ParseVariant(bad); err == nil {
			t.Errorf("ParseVariant(%q) = nil error", bad)
		}
	}
}
