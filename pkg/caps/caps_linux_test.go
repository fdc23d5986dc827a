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

func TestInitialUIDMap(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "initial", in: "         0          0 4294967295\n", want: true},
		{name: "rootless", in: "         0       1000          1\n         1     100000      65536\n"},
		{name: "remapped root", in: "         0     100000      65536\n"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := initialUIDMap([]byte(tt.in)); got != tt.want {
				t.Errorf("initialUIDMap(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
