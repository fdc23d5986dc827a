package pcapio

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/pcapio")

const goldenDir = "../../testdata/pcapio"

// TestGolden pins the exact bytes the writer produces. Run with -update
// after an intended change, and check the new files with the tools (see
// TestTools).
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		fx   fixture
	}{
		{"two-interfaces.pcapng", pcapngFixture()},
		{"one-interface.pcap", pcapFixture()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := mustWrite(t, tc.fx)
			path := filepath.Join(goldenDir, tc.file)
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("writer output differs from %s (run with -update if intended): got %d bytes, want %d, first difference at byte %d",
					path, len(got), len(want), firstDiff(got, want))
			}
			if diff := diffResult(expected(tc.fx), mustReadAll(t, want)); diff != "" {
				t.Errorf("reading %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
