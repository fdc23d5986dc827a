package linkwatch

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoff(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 50 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, b.next())
	}
	b.reset()
	got = append(got, b.next())
	ms := time.Millisecond
	want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms, 10 * ms}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
}
