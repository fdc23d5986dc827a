package linkwatch

import "sync"

// Subscribe returns a channel that receives a value after the view
// changes, and a function that ends the subscription (safe to call more
// than once; the channel is not closed). Notifications coalesce: the
// channel holds at most one, and the Watcher never blocks on it, so a
// receiver re-reads Links after each one.
func (w *Watcher) Subscribe() (<-chan struct{}, func()) {
	return w.subs.add()
}

// subscribers is the set of notification channels.
type subscribers struct {
	mu   sync.Mutex
	next uint64
	chs  map[uint64]chan struct{}
}

func (s *subscribers) add() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.chs == nil {
		s.chs = map[uint64]chan struct{}{}
	}
	id := s.next
	s.next++
	s.chs[id] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.chs, id)
		s.mu.Unlock()
	}
}

// notify wakes every subscriber without blocking.
func (s *subscribers) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.chs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
