//go:build linux

package caps

import (
	"os"
	"testing"
)

func TestMissingForCaptureAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to know the expected answer")
	}
	missing, err := MissingForCapture()
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 0 {
		t.Fatalf("root lacks %v", missing)
	}
}

func TestName(t *testing.T) {
	for c, want := range map[int]string{BPF: "CAP_BPF", NetAdmin: "CAP_NET_ADMIN", 99: "cap(99)"} {
		if got := Name(c); got != want {
			t.Errorf("Name(%d) = %q, want %q", c, got, want)
		}
	}
}
