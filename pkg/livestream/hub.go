package livestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Errors of Publish.
var (
	// ErrReplaced: a newer Publish took over the hub.
	ErrReplaced = errors.New("a newer live push replaced this one")
	// ErrEnded: the hub's run ended (End).
	ErrEnded = errors.New("the run's live stream has ended")
)

// Hub fans one run's live stream out to its subscribers. Its methods are
// safe for concurrent use.
type Hub struct {
	mu     sync.Mutex
	header []block // the current section's header and interface descriptions
	subs   map[*Subscriber]struct{}
	pub    *publication
	ended  bool
}

// publication is one Publish call.
type publication struct {
	cancel context.CancelCauseFunc
}

// NewHub returns a hub with no publisher and no subscribers.
func NewHub() *Hub {
	return &Hub{subs: map[*Subscriber]struct{}{}}
}

// Publish reads a pcapng stream from r and hands every block to the
// subscribers, until r ends (nil; a stream cut inside a block is an
// error), r fails, ctx ends, a newer Publish replaces this one
// (ErrReplaced) or End is called (ErrEnded). It never waits for a
// subscriber.
//
// When it stops before r ends, Publish unblocks the read it is waiting
// for: it sets a read deadline in the past when r has SetReadDeadline
// (net.Conn, os.File, or a wrapper of http.ResponseController for a
// request body), else closes r when it is an io.Closer; it returns once
// that read has returned. A reader with neither keeps Publish until its
// Read returns.
func (h *Hub) Publish(ctx context.Context, r io.Reader) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	me := &publication{cancel: cancel}
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		return ErrEnded
	}
	if h.pub != nil {
		h.pub.cancel(ErrReplaced)
	}
	h.pub = me
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.pub == me {
			h.pub = nil
		}
		h.mu.Unlock()
	}()

	done := make(chan error, 1)
	go func() { done <- h.read(ctx, me, r) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		switch u := r.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			_ = u.SetReadDeadline(time.Unix(1, 0))
		case io.Closer:
			_ = u.Close()
		}
		<-done
		return context.Cause(ctx)
	}
}

// read is Publish's reading loop.
func (h *Hub) read(ctx context.Context, me *publication, r io.Reader) error {
	br := newBlockReader(r)
	for {
		b, err := br.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("read live stream: %w", err)
		}
		if !h.deliver(me, b) {
			return context.Cause(ctx)
		}
	}
}

// deliver hands b to every subscriber, unless me is no longer the hub's
// publication.
func (h *Hub) deliver(me *publication, b block) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pub != me {
		return false
	}
	switch b.typ {
	case blockSHB:
		h.header = append(h.header[:0:0], b)
	case blockIDB:
		h.header = append(h.header, b)
	}
	for s := range h.subs {
		s.enqueue(b)
	}
	return true
}

// Subscribe returns a new subscriber whose queue holds at most
// bufferBytes of packet blocks (DefaultBufferBytes when 0 or less). Its
// stream starts with the current section's header, when the hub has
// one, and goes on with every block published from now on.
func (h *Hub) Subscribe(bufferBytes int) *Subscriber {
	if bufferBytes <= 0 {
		bufferBytes = DefaultBufferBytes
	}
	s := &Subscriber{hub: h, limit: bufferBytes, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.header {
		s.enqueue(b)
	}
	if h.ended {
		s.ended = true
	} else {
		h.subs[s] = struct{}{}
	}
	return s
}

// Subscribers is the number of subscribers that are not closed, for as
// long as the hub has not ended.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// End says the run ended: the publication stops (ErrEnded), later ones
// are refused, and every subscriber returns from WriteTo once it has
// written its queue. It is safe to call more than once.
func (h *Hub) End() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return
	}
	h.ended = true
	if h.pub != nil {
		h.pub.cancel(ErrEnded)
		h.pub = nil
	}
	for s := range h.subs {
		s.end()
		delete(h.subs, s)
	}
}

// remove forgets s.
func (h *Hub) remove(s *Subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}
