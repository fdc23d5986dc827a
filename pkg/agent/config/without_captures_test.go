package config

import (
	"strings"
	"testing"
)

func TestWithoutCaptures(t *testing.T) {
	for _, tc := range []struct{ name, file string }{
		{"empty file", ""},
		{"no captures key", "http:\n  listen: 127.0.0.1:9999\n"},
		{"empty list", "captures: []\nrings:\n  size: 1MiB\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.file), "agent.yaml"); err == nil {
				t.Fatal("Parse without WithoutCaptures accepted a file without captures")
			}
			c, err := Parse([]byte(tc.file), "agent.yaml", WithoutCaptures())
			if err != nil {
				t.Fatalf("Parse(WithoutCaptures): %v", err)
			}
			if len(c.Captures) != 0 {
				t.Fatalf("captures = %d, want 0", len(c.Captures))
			}
		})
	}
	// The other keys are still checked.
	_, err := Parse([]byte("http:\n  listen: nowhere\n"), "agent.yaml", WithoutCaptures())
	if err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Fatalf("bad http.listen: err = %v, want a message naming http.listen", err)
	}
}
