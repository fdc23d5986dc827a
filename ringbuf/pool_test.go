package ringbuf

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestPool(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := NewPool(2, 128, 4)
	if p.Free() != 2 {
		t.Fatalf("Free() = %d, want 2", p.Free())
	}
	a, b := p.Get(), p.Get()
	if a == nil || b == nil || a == b || a.Cap() != 128 || a.MaxRecords() != 4 {
		t.Fatal("Get returned bad batches")
	}
	if p.TryGet() != nil {
		t.Fatal("TryGet on an empty pool returned a batch")
	}
	a.Append([]byte("dirty"))
	got := make(chan *Batch)
	go func() { got <- p.Get() }()
	select {
	case <-got:
		t.Fatal("Get on an empty pool did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	p.Put(a)
	if g := <-got; g != a || g.Len() != 0 {
		t.Fatalf("Get after Put: %p len %d, want %p reset", g, g.Len(), a)
	}
	p.Put(a)
	p.Put(b)
	p.Put(NewBatch(1, 1)) // beyond capacity: dropped, no block
	p.Put(nil)
	if p.Free() != 2 {
		t.Fatalf("Free() = %d, want 2", p.Free())
	}
	if a := testing.AllocsPerRun(100, func() { p.Put(p.Get()) }); a != 0 {
		t.Errorf("Get/Put allocate: %v", a)
	}

	// Close wakes a waiting Get, and later Gets return nil.
	p.Get()
	p.Get()
	go func() { got <- p.Get() }()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	select {
	case g := <-got:
		if g != nil {
			t.Fatal("Get after Close returned a batch")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake Get")
	}
	p.Put(a)
	if p.Get() != nil || p.TryGet() != nil {
		t.Fatal("Get/TryGet after Close returned a batch")
	}
	p.Close()
}
