package ringbuf

import "sync"

// Pool is a bounded free list of Batches, so that reader and writer
// goroutines can hand batches back and forth without allocating: the reader
// Gets an empty batch, fills it with ReadBatch and sends it to the writer,
// which Puts it back when written. Batches are made when first needed, up
// to the pool's size, so an idle pool costs little memory. All methods are
// safe for concurrent use.
type Pool struct {
	free      chan *Batch
	done      chan struct{}
	closeOnce sync.Once

	mu                     sync.Mutex
	made, size             int
	arenaBytes, maxRecords int
}

// NewPool returns a Pool of up to n (at least 1) batches made by
// NewBatch(arenaBytes, maxRecords) as they are needed.
func NewPool(n, arenaBytes, maxRecords int) *Pool {
	n = max(n, 1)
	return &Pool{free: make(chan *Batch, n), done: make(chan struct{}), size: n, arenaBytes: arenaBytes, maxRecords: maxRecords}
}

// make returns a new batch if the pool has not made all of its own yet.
func (p *Pool) make() *Batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.made >= p.size {
		return nil
	}
	p.made++
	return NewBatch(p.arenaBytes, p.maxRecords)
}

// Get returns an empty batch, waiting for one to be Put back if none is free.
// After Close it returns nil (and a Get waiting when Close is called returns
// nil at once).
func (p *Pool) Get() *Batch {
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case b := <-p.free:
		return b
	default:
	}
	if b := p.make(); b != nil {
		return b
	}
	select {
	case b := <-p.free:
		return b
	case <-p.done:
		return nil
	}
}

// TryGet returns an empty batch if one is free, or nil without waiting
// (always nil after Close).
func (p *Pool) TryGet() *Batch {
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case b := <-p.free:
		return b
	default:
		return p.make()
	}
}

// Put resets b and returns it to the pool. It never blocks: a batch beyond
// the pool's capacity (one it did not hand out) is dropped, as is nil. Put
// after Close is allowed.
func (p *Pool) Put(b *Batch) {
	if b == nil {
		return
	}
	b.Reset()
	select {
	case p.free <- b:
	default:
	}
}

// Free returns how many batches the pool can hand out now without waiting:
// those Put back and those not made yet.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free) + p.size - p.made
}

// Close makes every waiting and later Get return nil. Idempotent.
func (p *Pool) Close() {
	p.closeOnce.Do(func() { close(p.done) })
}
