package linkwatch

import (
	"sync"
	"testing"
)

func TestSubscribeCoalesces(t *testing.T) {
	w := New(Options{})
	ch, cancel := w.Subscribe()
	defer cancel()
	w.set(Link{Name: "a", Index: 2})
	w.set(Link{Name: "b", Index: 3})
	w.set(Link{Name: "b", Index: 3}) // duplicate
	if got := len(ch); got != 1 {
		t.Fatalf("pending notifications = %d, want 1", got)
	}
	<-ch
	w.set(Link{Name: "b", Index: 3})
	w.remove(7)
	if got := len(ch); got != 0 {
		t.Errorf("pending notifications after no-op changes = %d, want 0", got)
	}
}

func TestUnsubscribe(t *testing.T) {
	w := New(Options{})
	ch, cancel := w.Subscribe()
	cancel()
	cancel() // twice is safe
	w.set(Link{Name: "a", Index: 2})
	if got := len(ch); got != 0 {
		t.Errorf("pending notifications after unsubscribe = %d, want 0", got)
	}
}

// TestSubscribeConcurrent is for the race detector.
func TestSubscribeConcurrent(t *testing.T) {
	w := New(Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				ch, cancel := w.Subscribe()
				w.set(Link{Name: "a", Index: 2, MTU: i*1000 + j})
				select {
				case <-ch:
				default:
				}
				_ = w.Links()
				cancel()
			}
		})
	}
	wg.Wait()
}
