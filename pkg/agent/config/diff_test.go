package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	webCapture = "  - name: web\n    interface: eth0\n    filter: tcp port 443\n    output: {dir: /srv/web}\n"
	dnsCapture = "  - name: dns\n    interface: eth1\n    filter: port 53\n    output: {dir: /srv/dns, export: {url: 's3://bkt/dns/'}}\n"
	exportPart = "export: {endpoint: 'https://s3.example'}\n"
)

func TestCompare(t *testing.T) {
	base := "captures:\n" + webCapture + dnsCapture + exportPart
	tests := []struct {
		name     string
		old, new string
		want     Diff
	}{
		{"same config twice", base, base, Diff{}},
		{"order changed only", base, "captures:\n" + dnsCapture + webCapture + exportPart, Diff{}},
		{"comment moves lines only", base, "# a comment\n\n" + base, Diff{}},
		{"changed filter", base, "captures:\n" + webCapture[:len(webCapture)-len("    output: {dir: /srv/web}\n")-len("    filter: tcp port 443\n")] +
			"    filter: tcp port 8443\n    output: {dir: /srv/web}\n" + dnsCapture + exportPart,
			Diff{Changed: []string{"web"}}},
		{"renamed capture", base, "captures:\n" + webCapture + "  - name: dns2\n" + dnsCapture[len("  - name: dns\n"):] + exportPart,
			Diff{Added: []string{"dns2"}, Removed: []string{"dns"}}},
		{"added and removed", "captures:\n" + webCapture, "captures:\n" + dnsCapture + exportPart,
			Diff{Added: []string{"dns"}, Removed: []string{"web"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, new := mustParse(t, tc.old), mustParse(t, tc.new)
			if diff := cmp.Diff(tc.want, Compare(old.Captures, new.Captures)); diff != "" {
				t.Errorf("Compare (-want +got):\n%s", diff)
			}
			if got := Compare(old.Captures, new.Captures).Empty(); got != (len(tc.want.Added)+len(tc.want.Changed)+len(tc.want.Removed) == 0) {
				t.Errorf("Empty() = %t for %+v", got, tc.want)
			}
		})
	}
}

func TestCompareConfig(t *testing.T) {
	base := "captures:\n" + webCapture + dnsCapture + exportPart
	tests := []struct {
		name     string
		old, new string
		want     Diff
	}{
		{"same", base, base, Diff{}},
		{"http only", base, base + "http: {listen: ':9999'}\nstop_timeout: 1m\n", Diff{}},
		{"rings restart every capture", base, base + "rings: {size: 4MiB}\n", Diff{Changed: []string{"dns", "web"}}},
		{"export restarts the uploading captures", base,
			"captures:\n" + webCapture + dnsCapture + "export: {endpoint: 'https://s3.example', part_size: 32MiB}\n",
			Diff{Changed: []string{"dns"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, CompareConfig(mustParse(t, tc.old), mustParse(t, tc.new))); diff != "" {
				t.Errorf("CompareConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEqualIgnoresLine(t *testing.T) {
	a := Capture{Name: "web", Interface: "eth0", Line: 3}
	b := a
	b.Line = 30
	if !a.Equal(b) {
		t.Error("captures that differ only in Line are not Equal")
	}
	b.Output.Retention.MinFree.Percent = 5
	if a.Equal(b) {
		t.Error("captures that differ in min_free are Equal")
	}
}
