package livestream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// TestEncoderStream: what an Encoder streams reads back, with pcapio
// and with Wireshark's tools, as the packets it was given, with one
// statistics block per interface at the end that counts no drops.
func TestEncoderStream(t *testing.T) {
	e := NewEncoder(testIfaces, EncoderOptions{Application: "ringtap test"})
	var out syncBuffer
	done := goErr(func() error { _, err := e.WriteTo(&out); return err })
	want := testPackets(0, 1000)
	for i := range want {
		if err := e.WritePacket(&want[i]); err != nil {
			t.Fatalf("WritePacket %d: %v", i, err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mustReturn(t, "WriteTo", done); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	got := mustRead(t, out.Bytes())
	mustSamePackets(t, "packets", want, got.packets)
	if d := cmp.Diff(testIfaces, got.ifaces); d != "" {
		t.Errorf("interfaces (-want +got):\n%s", d)
	}
	if e.Dropped() != 0 {
		t.Errorf("Dropped() = %d, want 0", e.Dropped())
	}
	wantLast := map[uint32]stat{0: {Iface: 0, HasDrop: true}, 1: {Iface: 1, HasDrop: true}}
	if d := cmp.Diff(wantLast, got.lastStats()); d != "" {
		t.Errorf("last statistics (-want +got):\n%s", d)
	}
	for i := range testIfaces {
		if _, ok := got.pcapioStats[i]; !ok {
			t.Errorf("pcapio.Reader read no statistics of interface %d", i)
		}
	}
	mustCheckTools(t, out.Bytes(), len(want), len(got.stats))
}

// TestEncoderDropsWhenFull: with nobody reading, WritePacket keeps
// returning at once; what does not fit the buffer is dropped, counted,
// and the statistics blocks say so in isb_osdrop and a comment that
// Wireshark and gopacket read.
func TestEncoderDropsWhenFull(t *testing.T) {
	e := NewEncoder(testIfaces, EncoderOptions{BufferBytes: 32 << 10})
	all := testPackets(0, 2000)
	for i := range all {
		if err := e.WritePacket(&all[i]); err != nil {
			t.Fatalf("WritePacket %d: %v", i, err)
		}
	}
	dropped := e.Dropped()
	if dropped == 0 || dropped == uint64(len(all)) {
		t.Fatalf("Dropped() = %d of %d packets, want some kept and some dropped", dropped, len(all))
	}
	var out syncBuffer
	done := goErr(func() error { _, err := e.WriteTo(&out); return err })
	e.Close()
	if err := mustReturn(t, "WriteTo", done); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if err := e.WritePacket(&all[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("WritePacket after Close: %v, want ErrClosed", err)
	}

	got := mustRead(t, out.Bytes())
	kept := uint64(len(got.packets))
	if kept+dropped != uint64(len(all)) {
		t.Errorf("%d packets read + %d dropped, want %d", kept, dropped, len(all))
	}
	if !isSubsequence(got.packets, all) {
		t.Error("the packets read are not a subsequence of the packets written")
	}
	// The drops of each interface: its packets written, less those read.
	perIface := map[uint32]uint64{}
	for _, p := range all {
		perIface[uint32(p.Interface)]++
	}
	for _, p := range got.packets {
		perIface[uint32(p.Interface)]--
	}
	var sum uint64
	var comments []string
	last := got.lastStats()
	if len(last) != len(testIfaces) {
		t.Errorf("last statistics of %d interfaces, want %d", len(last), len(testIfaces))
	}
	for i := range testIfaces {
		iface, st := uint32(i), last[uint32(i)]
		n := perIface[iface]
		want := stat{Iface: iface, OSDrop: n, HasDrop: true,
			Comments: []string{fmt.Sprintf("ringtap live stream: %d packets dropped because the reader was too slow; the job's file is complete", n)}}
		if d := cmp.Diff(want, st); d != "" {
			t.Errorf("last statistics of interface %d (-want +got):\n%s", iface, d)
		}
		sum += st.OSDrop
		comments = append(comments, st.Comments...)
	}
	if sum != dropped {
		t.Errorf("isb_osdrop sums to %d, Dropped() = %d", sum, dropped)
	}
	if got := gopacketStatComments(t, out.Bytes()); len(got) < len(comments) || !cmp.Equal(got[len(got)-len(comments):], comments) {
		t.Errorf("gopacket read the comments %q, want them to end with %q", got, comments)
	}
	mustCheckTools(t, out.Bytes(), int(kept), len(got.stats))
}

// TestEncoderNeverBlocks: a reader that does not read at all does not
// hold up WritePacket; the stream still ends with Close once the
// reader reads again.
func TestEncoderNeverBlocks(t *testing.T) {
	e := NewEncoder(testIfaces, EncoderOptions{BufferBytes: 64 << 10})
	gw := newGateWriter()
	done := goErr(func() error { _, err := e.WriteTo(gw); return err })
	all := testPackets(0, 20000)
	wrote := goErr(func() error {
		for i := range all {
			if err := e.WritePacket(&all[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err := mustReturn(t, "WritePacket with a blocked reader", wrote); err != nil {
		t.Fatal(err)
	}
	if e.Dropped() == 0 {
		t.Error("nothing dropped with a reader that does not read")
	}
	e.Close()
	gw.open()
	if err := mustReturn(t, "WriteTo", done); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	got := mustRead(t, gw.buf.Bytes())
	if n := uint64(len(got.packets)); n+e.Dropped() != uint64(len(all)) {
		t.Errorf("%d packets read + %d dropped, want %d", n, e.Dropped(), len(all))
	}
}

// TestEncoderPeriodicStats: a stream with no packets still carries a
// statistics block per interface every second.
func TestEncoderPeriodicStats(t *testing.T) {
	e := NewEncoder(testIfaces, EncoderOptions{})
	pr, pw := io.Pipe()
	done := goErr(func() error { _, err := e.WriteTo(pw); pw.Close(); return err })
	br := newBlockReader(pr)
	isbs := 0
	for isbs < 2*len(testIfaces) { // two rounds, without Close
		b, err := br.next()
		if err != nil {
			t.Fatalf("read the stream: %v", err)
		}
		if b.typ == blockISB {
			isbs++
		}
	}
	e.Close()
	go io.Copy(io.Discard, pr)
	if err := mustReturn(t, "WriteTo", done); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestEncoderErrors(t *testing.T) {
	tests := []struct {
		name    string
		ifaces  []pcapio.Interface
		packet  pcapio.Packet
		write   io.Writer
		wantPkt string // error of WritePacket, "" for none
		wantW   string // error of WriteTo, "" for none
	}{
		{"no interfaces", nil, testPacket(0), io.Discard, "no interfaces", "no interfaces"},
		{"interface out of range", testIfaces, pcapio.Packet{Interface: 2, Data: []byte{1}}, io.Discard, "packet of interface 2, the stream has 2", ""},
		{"write fails", testIfaces, testPacket(0), failWriter{}, "", "connection reset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEncoder(tc.ifaces, EncoderOptions{})
			err := e.WritePacket(&tc.packet)
			if !matches(err, tc.wantPkt) {
				t.Errorf("WritePacket: %v, want %q", err, tc.wantPkt)
			}
			e.Close()
			_, err = e.WriteTo(tc.write)
			if !matches(err, tc.wantW) {
				t.Errorf("WriteTo: %v, want %q", err, tc.wantW)
			}
			if _, err := e.WriteTo(io.Discard); err == nil {
				t.Error("a second WriteTo did not fail")
			}
		})
	}
}

// isSubsequence reports whether sub is all with some packets left out.
func isSubsequence(sub, all []pcapio.Packet) bool {
	i := 0
	for _, p := range all {
		if i < len(sub) && samePacket(p, sub[i]) {
			i++
		}
	}
	return i == len(sub)
}

func samePacket(a, b pcapio.Packet) bool {
	return a.Timestamp == b.Timestamp && a.WireLen == b.WireLen && a.Interface == b.Interface &&
		a.Direction == b.Direction && bytes.Equal(a.Data, b.Data)
}

// matches reports whether err is nil when want is "", else contains it.
func matches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}
