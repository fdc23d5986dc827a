// Package feed wakes the WaitForChange calls of one Store: a waiter takes
// the channel of a device before it reads the device's config, and a
// change closes it, so a change between the read and the wait is never
// missed.
package feed

import "sync"

// Hub is the set of channels of the devices being waited for. The zero
// Hub is ready to use.
type Hub struct {
	mu     sync.Mutex
	chans  map[string]chan struct{}
	closed chan struct{}
}

// Watch returns a channel that is closed at the next Notify of device,
// NotifyAll or Close. Take it before reading the state it guards.
func (h *Hub) Watch(device string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed != nil {
		return h.closed
	}
	if h.chans == nil {
		h.chans = make(map[string]chan struct{})
	}
	ch, ok := h.chans[device]
	if !ok {
		ch = make(chan struct{})
		h.chans[device] = ch
	}
	return ch
}

// Notify wakes the waiters of device.
func (h *Hub) Notify(device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.chans[device]; ok {
		close(ch)
		delete(h.chans, device)
	}
}

// NotifyAll wakes every waiter, for when changes may have been missed (a
// lost connection).
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for d, ch := range h.chans {
		close(ch)
		delete(h.chans, d)
	}
}

// Close wakes every waiter; later Watch channels are closed already.
// Closing twice is safe.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed != nil {
		return
	}
	h.closed = make(chan struct{})
	close(h.closed)
	for d, ch := range h.chans {
		close(ch)
		delete(h.chans, d)
	}
}

// Closed says whether Close was called.
func (h *Hub) Closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed != nil
}
