package ringbuf

import (
	"bytes"
	"testing"
	"unsafe"
)

func TestBatchAppend(t *testing.T) {
	b := NewBatch(100, 4) // arena rounded up to 104
	if b.Cap() != 104 || b.MaxRecords() != 4 || b.Len() != 0 || b.Bytes() != 0 {
		t.Fatalf("new batch: cap %d, max %d, len %d, bytes %d", b.Cap(), b.MaxRecords(), b.Len(), b.Bytes())
	}
	recs := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("b"), 9), bytes.Repeat([]byte("c"), 70)}
	for i, r := range recs {
		if !b.Append(r) {
			t.Fatalf("Append(record %d) = false", i)
		}
	}
	// Offsets 0, 8, 8, 24; 24+70 = 94 <= 104.
	if b.Len() != 4 || b.Bytes() != 80 || !b.Full() {
		t.Fatalf("len %d, bytes %d, full %v", b.Len(), b.Bytes(), b.Full())
	}
	if b.Append([]byte("x")) {
		t.Fatal("Append past the record limit succeeded")
	}
	for i, r := range recs {
		got := b.Record(i)
		if !bytes.Equal(got, r) || cap(got) != len(got) {
			t.Fatalf("Record(%d) = %q (cap %d), want %q", i, got, cap(got), r)
		}
		if len(got) > 0 && uintptr(unsafe.Pointer(&got[0]))%8 != 0 {
			t.Errorf("Record(%d) is not 8-byte aligned", i)
		}
	}
	// Appending to a record does not clobber the next one.
	_ = append(b.Record(0), 'z')
	if !bytes.Equal(b.Record(1), recs[1]) || !bytes.Equal(b.Record(2), recs[2]) {
		t.Fatal("append to a record overwrote the arena")
	}

	b.Reset()
	if b.Len() != 0 || b.Bytes() != 0 || b.Full() {
		t.Fatal("Reset left records")
	}
	// Arena limit on a non-empty batch.
	if !b.Append(make([]byte, 60)) || b.Append(make([]byte, 60)) {
		t.Fatal("arena limit not applied")
	}
	b.Reset()
	// An oversize record on an empty batch grows the arena, once.
	big := bytes.Repeat([]byte{7}, 1000)
	if !b.Append(big) || !bytes.Equal(b.Record(0), big) || b.Cap() < 1000 {
		t.Fatalf("oversize Append: len %d, cap %d", b.Len(), b.Cap())
	}
	b.Reset()
	if b.Cap() < 1000 {
		t.Fatal("Reset shrank the arena")
	}
	if a := testing.AllocsPerRun(10, func() {
		b.Reset()
		for b.Append(big[:10]) {
		}
	}); a != 0 {
		t.Errorf("Append allocates: %v per run", a)
	}
}

func TestBatchDefaults(t *testing.T) {
	if b := NewBatch(64, 0); b.MaxRecords() != 8 {
		t.Errorf("NewBatch(64, 0).MaxRecords() = %d, want 8", b.MaxRecords())
	}
	b := NewBatch(0, 0)
	if b.MaxRecords() != 1 || b.Cap() != 0 {
		t.Fatalf("NewBatch(0, 0): max %d, cap %d", b.MaxRecords(), b.Cap())
	}
	if !b.Append([]byte("hello")) || string(b.Record(0)) != "hello" {
		t.Fatal("empty arena did not grow")
	}
	if b.Append([]byte("x")) {
		t.Fatal("second record accepted past the limit")
	}
	if b := NewBatch(-5, -1); b.Cap() != 0 || b.MaxRecords() != 1 {
		t.Fatalf("NewBatch(-5, -1): cap %d, max %d", b.Cap(), b.MaxRecords())
	}
}
