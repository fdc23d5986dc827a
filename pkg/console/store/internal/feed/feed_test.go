package feed

import (
	"testing"
	"time"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Millisecond):
		return false
	}
}

func TestHub(t *testing.T) {
	var h Hub
	a1, a2, b := h.Watch("a"), h.Watch("a"), h.Watch("b")
	h.Notify("c") // nobody waits
	if closed(a1) || closed(b) {
		t.Fatal("woken by another device")
	}
	h.Notify("a")
	if !closed(a1) || !closed(a2) {
		t.Fatal("Notify did not wake the device's waiters")
	}
	if closed(b) {
		t.Fatal("Notify woke another device")
	}
	if a3 := h.Watch("a"); closed(a3) {
		t.Fatal("a new watch is closed already")
	}
	h.NotifyAll()
	if !closed(b) {
		t.Fatal("NotifyAll did not wake")
	}
	c := h.Watch("c")
	h.Close()
	h.Close()
	if !closed(c) || !closed(h.Watch("d")) || !h.Closed() {
		t.Fatal("Close did not wake, or a watch after it waits")
	}
}
