package capture

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestToRestore(t *testing.T) {
	tests := []struct {
		name        string
		before, now map[string]bool
		want        map[string]bool
	}{
		{"generic xdp turned both off", map[string]bool{"large-receive-offload": true, "rx-gro-hw": true},
			map[string]bool{"large-receive-offload": false, "rx-gro-hw": false}, map[string]bool{"large-receive-offload": true, "rx-gro-hw": true}},
		{"was off, stays off", map[string]bool{"large-receive-offload": false}, map[string]bool{"large-receive-offload": false}, map[string]bool{}},
		{"still on", map[string]bool{"rx-gro-hw": true}, map[string]bool{"rx-gro-hw": true}, map[string]bool{}},
		{"nothing known", nil, map[string]bool{"rx-gro-hw": false}, map[string]bool{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, toRestore(tt.before, tt.now)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
