package pcapio

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{in: "pcapng", want: FormatPCAPNG},
		{in: "pcap", want: FormatPCAP},
		{in: "", want: FormatPCAPNG},
		{in: "PCAP", wantErr: true},
		{in: "erf", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFormat(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseFormat(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("ParseFormat(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	got := []string{FormatPCAPNG.String(), FormatPCAP.String(), Format(7).String(),
		DirUnknown.String(), DirInbound.String(), DirOutbound.String(), Direction(3).String()}
	want := []string{"pcapng", "pcap", "Format(7)", "unknown", "inbound", "outbound", "Direction(3)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String() (-want +got):\n%s", diff)
	}
	for _, f := range []Format{FormatPCAPNG, FormatPCAP} {
		if back, err := ParseFormat(f.String()); err != nil || back != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", f.String(), back, err, f)
		}
	}
}
