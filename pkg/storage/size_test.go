package storage

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "10B", want: 10},
		{in: "5KB", want: 5000},
		{in: "5kb", want: 5000},
		{in: "100MB", want: 100_000_000},
		{in: "2GB", want: 2_000_000_000},
		{in: "1TB", want: 1_000_000_000_000},
		{in: "5KiB", want: 5120},
		{in: "1MiB", want: 1 << 20},
		{in: "1.5GiB", want: 3 << 29},
		{in: "3GiB", want: 3 << 30},
		{in: "2 MiB", want: 2 << 20},
		{in: "1k", want: 1024},
		{in: "10M", want: 10 << 20},
		{in: "1G", want: 1 << 30},
		{in: "0.5KB", want: 500},
		{in: "1.0005KB", want: 1001}, // rounded half up
		{in: "", bad: true},
		{in: "MB", bad: true},
		{in: "-5MB", bad: true},
		{in: "5XB", bad: true},
		{in: "1.2.3MB", bad: true},
		{in: "9999999TB", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseSpace(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Space
		bad  bool
	}{
		{in: "10%", want: Space{Percent: 10}},
		{in: "0.5%", want: Space{Percent: 0.5}},
		{in: "5GB", want: Space{Bytes: 5e9}},
		{in: "512MiB", want: Space{Bytes: 512 << 20}},
		{in: "0%", bad: true},
		{in: "100%", bad: true},
		{in: "150%", bad: true},
		{in: "x%", bad: true},
		{in: "lots", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSpace(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseSpace(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("ParseSpace(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
	if got := (Space{Percent: 10}).Of(1000); got != 100 {
		t.Errorf("10%% of 1000 = %d", got)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "60", want: time.Minute},
		{in: "90s", want: 90 * time.Second},
		{in: "15m", want: 15 * time.Minute},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "", bad: true},
		{in: "-5s", bad: true},
		{in: "xd", bad: true},
		{in: "5 parsecs", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
