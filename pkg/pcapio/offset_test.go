package pcapio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOffsetAfterCut cuts files at every byte and checks that Offset,
// after the read fails, marks a valid prefix holding every packet read:
// the promise recovery of torn files builds on.
func TestOffsetAfterCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		fx   fixture
	}{
		{"pcapng", pcapngFixture()},
		{"pcap", pcapFixture()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := mustWrite(t, tc.fx)
			for cut := 0; cut <= len(full); cut++ {
				b := full[:cut]
				got, off, err := readUntilError(b)
				if cut == len(full) {
					if err != nil || off != int64(len(full)) {
						t.Fatalf("whole file: offset %d of %d, error %v", off, len(full), err)
					}
					continue
				}
				if err == nil {
					// A cut right after a block reads cleanly.
					if off != int64(cut) {
						t.Fatalf("cut %d: clean read but offset %d", cut, off)
					}
					continue
				}
				if off > int64(cut) {
					t.Fatalf("cut %d: offset %d beyond the data", cut, off)
				}
				if off == 0 {
					continue // the header itself was cut
				}
				again, err := readAll(b[:off])
				if err != nil {
					t.Fatalf("cut %d: prefix of %d bytes does not read: %v", cut, off, err)
				}
				if diff := cmp.Diff(got, again.Packets, equalBytes); diff != "" {
					t.Fatalf("cut %d: packets of the prefix differ (-before +after):\n%s", cut, diff)
				}
			}
		})
	}
}

// readUntilError reads packets until an error and returns them with the
// reader's Offset. A clean end gives a nil error.
func readUntilError(b []byte) ([]Packet, int64, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	var pkts []Packet
	for {
		var p Packet
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			return pkts, r.Offset(), nil
		}
		if err != nil {
			return pkts, r.Offset(), err
		}
		p.Data = bytes.Clone(p.Data)
		pkts = append(pkts, p)
	}
}

func TestOffsetAfterMalformedBlock(t *testing.T) {
	full := mustWrite(t, pcapngFixture())
	// Overwrite the last block's trailing length: everything before it
	// stays valid.
	fx := pcapngFixture()
	fx.stats = nil
	withoutStats := len(mustWrite(t, fx))
	b := bytes.Clone(full)
	b[len(b)-1] ^= 0xff
	_, off, err := readUntilError(b)
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("error %v, want ErrFormat", err)
	}
	// The first statistics block is fine; the second is not.
	if want := int64(withoutStats + isbSize); off != want {
		t.Fatalf("offset %d, want %d", off, want)
	}
}

func TestBuffered(t *testing.T) {
	var out bytes.Buffer
	w, err := NewWriter(&out, WriterOptions{Interfaces: oneInterface, BufferSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	header := w.Buffered()
	if header == 0 || out.Len() != 0 {
		t.Fatalf("after NewWriter: Buffered %d, written %d", header, out.Len())
	}
	p := Packet{Timestamp: baseTime, WireLen: 100, Data: frame(100, 1)}
	if err := w.WritePacket(&p); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Buffered(), header+epbSize+100; got != want {
		t.Fatalf("Buffered %d after a packet, want %d", got, want)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Buffered() != 0 || int64(out.Len()) != w.Written() {
		t.Fatalf("after Flush: Buffered %d, %d bytes out, Written %d", w.Buffered(), out.Len(), w.Written())
	}
}

func TestStatsTimes(t *testing.T) {
	fx := uniformFixture()
	fx.stats = []InterfaceStats{
		{Timestamp: baseTime + 9e9, StartTime: baseTime, EndTime: baseTime + 9e9, Received: 10, Dropped: 1, Accepted: 8},
		{Timestamp: baseTime + 9e9, EndTime: baseTime + 9e9, Received: 3}, // no start time
	}
	b := mustWrite(t, fx)
	if diff := diffResult(expected(fx), mustReadAll(t, b)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	path := filepath.Join(t.TempDir(), "isb.pcapng")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Wireshark reads the options without complaint.
	mustRun(t, "capinfos", path)
	mustRun(t, "tshark", "-r", path)
}
