package livestream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// TestHubFastAndSlow: an agent's encoder publishes through a pipe to a
// hub with a fast and a slow subscriber. The publisher never waits for
// the slow one, the fast one gets every packet, the slow one loses
// packets and its statistics blocks count them.
func TestHubFastAndSlow(t *testing.T) {
	hub := NewHub()
	fast := hub.Subscribe(0)
	slow := hub.Subscribe(8 << 10)
	if n := hub.Subscribers(); n != 2 {
		t.Fatalf("Subscribers() = %d, want 2", n)
	}
	var fastOut syncBuffer
	slowOut := newGateWriter()
	fastDone := goErr(func() error { _, err := fast.WriteTo(&fastOut); return err })
	slowDone := goErr(func() error { _, err := slow.WriteTo(slowOut); return err })

	enc := NewEncoder(testIfaces, EncoderOptions{Application: "ringtap test"})
	pr, pw := io.Pipe()
	encDone := goErr(func() error { _, err := enc.WriteTo(pw); pw.Close(); return err })
	pubDone := goErr(func() error { return hub.Publish(context.Background(), pr) })
	all := testPackets(0, 3000)
	for i := range all {
		if err := enc.WritePacket(&all[i]); err != nil {
			t.Fatal(err)
		}
	}
	enc.Close()
	if err := mustReturn(t, "the encoder's WriteTo", encDone); err != nil {
		t.Fatalf("encoder WriteTo: %v", err)
	}
	// The slow subscriber has not written a byte yet: publishing ended anyway.
	if err := mustReturn(t, "Publish with a stuck subscriber", pubDone); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if enc.Dropped() != 0 {
		t.Fatalf("the encoder dropped %d packets; the test wants the hub to drop", enc.Dropped())
	}
	hub.End()
	if err := mustReturn(t, "the fast subscriber's WriteTo", fastDone); err != nil {
		t.Fatalf("fast WriteTo: %v", err)
	}
	slowOut.open()
	if err := mustReturn(t, "the slow subscriber's WriteTo", slowDone); err != nil {
		t.Fatalf("slow WriteTo: %v", err)
	}
	if n := hub.Subscribers(); n != 0 {
		t.Errorf("Subscribers() after End = %d, want 0", n)
	}

	gotFast := mustRead(t, fastOut.Bytes())
	mustSamePackets(t, "fast subscriber's packets", all, gotFast.packets)
	if fast.Dropped() != 0 {
		t.Errorf("fast subscriber dropped %d", fast.Dropped())
	}
	mustCheckTools(t, fastOut.Bytes(), len(all), len(gotFast.stats))

	gotSlow := mustRead(t, slowOut.buf.Bytes())
	dropped := slow.Dropped()
	if dropped == 0 || uint64(len(gotSlow.packets))+dropped != uint64(len(all)) {
		t.Errorf("slow subscriber: %d packets read, %d dropped, want some dropped and %d in all", len(gotSlow.packets), dropped, len(all))
	}
	if !isSubsequence(gotSlow.packets, all) {
		t.Error("the slow subscriber's packets are not a subsequence of the packets published")
	}
	if d := cmp.Diff(testIfaces, gotSlow.ifaces); d != "" {
		t.Errorf("slow subscriber's interfaces (-want +got):\n%s", d)
	}
	perIface := map[uint32]uint64{}
	for _, p := range all {
		perIface[uint32(p.Interface)]++
	}
	for _, p := range gotSlow.packets {
		perIface[uint32(p.Interface)]--
	}
	var comments []string
	last := gotSlow.lastStats()
	for iface := range testIfaces {
		n := perIface[uint32(iface)]
		want := stat{Iface: uint32(iface), OSDrop: n, HasDrop: true,
			Comments: []string{fmt.Sprintf("ringtap live stream: %d packets dropped because the reader was too slow; the job's file is complete", n)}}
		if d := cmp.Diff(want, last[uint32(iface)]); d != "" {
			t.Errorf("slow subscriber's last statistics of interface %d (-want +got):\n%s", iface, d)
		}
		comments = append(comments, want.Comments...)
	}
	if got := gopacketStatComments(t, slowOut.buf.Bytes()); len(got) < 2 || !cmp.Equal(got[len(got)-2:], comments) {
		t.Errorf("gopacket read the comments %q, want them to end with %q", got, comments)
	}
	mustCheckTools(t, slowOut.buf.Bytes(), len(gotSlow.packets), len(gotSlow.stats))
}

// TestHubLateJoiner: a subscriber that joins after the header was
// published gets it first, then what is published after it joined.
func TestHubLateJoiner(t *testing.T) {
	hub := NewHub()
	early := hub.Subscribe(0)
	earlyR, earlyOut := io.Pipe()
	earlyDone := goErr(func() error { _, err := early.WriteTo(earlyOut); earlyOut.Close(); return err })
	pr, pw := io.Pipe()
	pubDone := goErr(func() error { return hub.Publish(context.Background(), pr) })

	all := testPackets(0, 20)
	stream := mustWriteStream(t, testIfaces, all)
	split := len(mustWriteStream(t, testIfaces, all[:10]))
	if _, err := pw.Write(stream[:split]); err != nil {
		t.Fatal(err)
	}
	// The early subscriber has seen the first ten packets: the hub has
	// published them.
	r, err := pcapio.NewReader(earlyR)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		var p pcapio.Packet
		if err := r.Next(&p); err != nil {
			t.Fatalf("early subscriber, packet %d: %v", i, err)
		}
	}
	late := hub.Subscribe(0)
	var lateOut syncBuffer
	lateDone := goErr(func() error { _, err := late.WriteTo(&lateOut); return err })
	if _, err := pw.Write(stream[split:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := mustReturn(t, "Publish", pubDone); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	hub.End()
	go io.Copy(io.Discard, earlyR)
	for _, c := range []<-chan error{earlyDone, lateDone} {
		if err := mustReturn(t, "WriteTo", c); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	}
	got := mustRead(t, lateOut.Bytes())
	if d := cmp.Diff(all[10:], got.packets); d != "" {
		t.Errorf("late subscriber's packets (-want +got):\n%s", d)
	}
	if d := cmp.Diff(testIfaces, got.ifaces); d != "" {
		t.Errorf("late subscriber's interfaces (-want +got):\n%s", d)
	}
	mustCheckTools(t, lateOut.Bytes(), 10, 0)
}

// deadlineReader blocks in Read until its read deadline is set, as a
// request body under http.ResponseController does.
type deadlineReader struct {
	once sync.Once
	c    chan struct{}
}

func (d *deadlineReader) Read([]byte) (int, error) {
	<-d.c
	return 0, errors.New("i/o timeout")
}

func (d *deadlineReader) SetReadDeadline(time.Time) error {
	d.once.Do(func() { close(d.c) })
	return nil
}

// TestHubReplace: a newer Publish ends the older, whose read is
// unblocked (by Close or by a read deadline), and the subscribers go on
// with the newer one's section.
func TestHubReplace(t *testing.T) {
	tests := []struct {
		name  string
		older func() io.Reader
	}{
		{"closer", func() io.Reader { pr, _ := io.Pipe(); return pr }},
		{"read deadline", func() io.Reader { return &deadlineReader{c: make(chan struct{})} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hub := NewHub()
			sub := hub.Subscribe(0)
			var out syncBuffer
			subDone := goErr(func() error { _, err := sub.WriteTo(&out); return err })

			olderDone := goErr(func() error { return hub.Publish(context.Background(), tc.older()) })
			mustPublishing(t, hub)
			newer := mustWriteStream(t, testIfaces[:1], testPackets(0, 1))
			newerDone := goErr(func() error { return hub.Publish(context.Background(), bytes.NewReader(newer)) })
			if err := mustReturn(t, "the older Publish", olderDone); !errors.Is(err, ErrReplaced) {
				t.Errorf("older Publish: %v, want ErrReplaced", err)
			}
			if err := mustReturn(t, "the newer Publish", newerDone); err != nil {
				t.Errorf("newer Publish: %v", err)
			}
			hub.End()
			if err := mustReturn(t, "WriteTo", subDone); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, out.Bytes()); len(got.packets) != 1 {
				t.Errorf("subscriber read %d packets, want the newer publisher's 1", len(got.packets))
			}
		})
	}
}

// TestHubReplaceMidStream: the older publisher's section is cut by the
// newer's, and a subscriber's stream holds both sections whole.
func TestHubReplaceMidStream(t *testing.T) {
	hub := NewHub()
	sub := hub.Subscribe(0)
	outR, outW := io.Pipe()
	subDone := goErr(func() error { _, err := sub.WriteTo(outW); outW.Close(); return err })
	first := mustWriteStream(t, testIfaces, testPackets(0, 5))
	pr, pw := io.Pipe()
	olderDone := goErr(func() error { return hub.Publish(context.Background(), pr) })
	go pw.Write(first)
	r, err := pcapio.NewReader(outR)
	if err != nil {
		t.Fatal(err)
	}
	var got []pcapio.Packet
	for range 5 {
		var p pcapio.Packet
		if err := r.Next(&p); err != nil {
			t.Fatal(err)
		}
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
	}
	secondPackets := testPackets(5, 8)
	for i := range secondPackets {
		secondPackets[i].Interface = 0
	}
	second := mustWriteStream(t, testIfaces[1:], secondPackets)
	if err := hub.Publish(context.Background(), bytes.NewReader(second)); err != nil {
		t.Fatalf("newer Publish: %v", err)
	}
	if err := mustReturn(t, "the older Publish", olderDone); !errors.Is(err, ErrReplaced) {
		t.Errorf("older Publish: %v, want ErrReplaced", err)
	}
	hub.End()
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
	}
	if err := mustReturn(t, "WriteTo", subDone); err != nil {
		t.Fatal(err)
	}
	want := testPackets(0, 8)
	for i := 5; i < 8; i++ {
		want[i].Interface = 2 // the first interface of the second section
		if snap := testIfaces[1].SnapLen; uint32(len(want[i].Data)) > snap {
			want[i].Data = want[i].Data[:snap]
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("packets over both sections (-want +got):\n%s", d)
	}
	if d := cmp.Diff(append(testIfaces[:2:2], testIfaces[1]), r.Interfaces()); d != "" {
		t.Errorf("interfaces (-want +got):\n%s", d)
	}
}

// mustPublishing waits until a Publish has taken the hub.
func mustPublishing(t *testing.T, hub *Hub) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		hub.mu.Lock()
		p := hub.pub
		hub.mu.Unlock()
		if p != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Publish did not take the hub")
		}
	}
}

// TestHubEnd: End stops the publisher and lets subscribers finish;
// later publishers are refused and later subscribers get the header
// and the end at once.
func TestHubEnd(t *testing.T) {
	hub := NewHub()
	sub := hub.Subscribe(0)
	var out syncBuffer
	subDone := goErr(func() error { _, err := sub.WriteTo(&out); return err })
	pr, pw := io.Pipe()
	pubDone := goErr(func() error { return hub.Publish(context.Background(), pr) })
	go pw.Write(mustWriteStream(t, testIfaces, testPackets(0, 3)))
	for deadline := time.Now().Add(time.Minute); len(mustReadPartial(out.Bytes())) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber got no packets")
		}
	}
	hub.End()
	hub.End() // twice is fine
	if err := mustReturn(t, "Publish", pubDone); !errors.Is(err, ErrEnded) {
		t.Errorf("Publish when the hub ends: %v, want ErrEnded", err)
	}
	if err := mustReturn(t, "WriteTo", subDone); err != nil {
		t.Errorf("WriteTo: %v", err)
	}
	if err := hub.Publish(context.Background(), strings.NewReader("")); !errors.Is(err, ErrEnded) {
		t.Errorf("Publish after End: %v, want ErrEnded", err)
	}
	late := hub.Subscribe(0)
	var lateOut syncBuffer
	if _, err := late.WriteTo(&lateOut); err != nil {
		t.Errorf("late WriteTo: %v", err)
	}
	if got := mustRead(t, lateOut.Bytes()); len(got.packets) != 0 || len(got.ifaces) != len(testIfaces) {
		t.Errorf("late subscriber: %d packets and %d interfaces, want the header alone", len(got.packets), len(got.ifaces))
	}
	if n := hub.Subscribers(); n != 0 {
		t.Errorf("Subscribers() = %d, want 0", n)
	}
}

// mustReadPartial returns the packets of a stream that may be cut short.
func mustReadPartial(data []byte) []pcapio.Packet {
	r, err := pcapio.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	var ps []pcapio.Packet
	for {
		var p pcapio.Packet
		if r.Next(&p) != nil {
			return ps
		}
		ps = append(ps, p)
	}
}

// TestSubscriberClose: Close ends a WriteTo that waits, and leaves the
// hub.
func TestSubscriberClose(t *testing.T) {
	hub := NewHub()
	sub := hub.Subscribe(0)
	done := goErr(func() error { _, err := sub.WriteTo(io.Discard); return err })
	sub.Close()
	sub.Close()
	if err := mustReturn(t, "WriteTo", done); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteTo after Close: %v, want ErrClosed", err)
	}
	if n := hub.Subscribers(); n != 0 {
		t.Errorf("Subscribers() = %d, want 0", n)
	}
}

// TestHubMalformed: Publish refuses what is not a pcapng stream, and a
// stream cut inside a block.
func TestHubMalformed(t *testing.T) {
	good := mustWriteStream(t, testIfaces, testPackets(0, 2))
	shbLen := int(le.Uint32(good[4:]))
	badTrail := bytes.Clone(good)
	badTrail[len(badTrail)-1] ^= 0xff
	badLen := bytes.Clone(good)
	le.PutUint32(badLen[shbLen+4:], 13)
	tests := []struct {
		name string
		in   []byte
		want error // nil: no error
	}{
		{"empty", nil, nil},
		{"whole", good, nil},
		{"not pcapng", []byte("GET / HTTP/1.1\r\n\r\n"), ErrFormat},
		{"no section header first", good[shbLen:], ErrFormat},
		{"bad byte-order magic", append(append(bytes.Clone(good[:8]), 1, 2, 3, 4), good[12:]...), ErrFormat},
		{"trailing length differs", badTrail, ErrFormat},
		{"length not a multiple of 4", badLen, ErrFormat},
		{"cut inside a block", good[:len(good)-3], io.ErrUnexpectedEOF},
		{"cut inside a header", good[:shbLen+5], io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := NewHub().Publish(context.Background(), bytes.NewReader(tc.in))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Publish: %v, want %v", err, tc.want)
			}
		})
	}
}

// beStream is a big-endian pcapng stream, as a big-endian host writes
// it: one interface with microsecond timestamps (no if_tsresol), an
// enhanced packet block per packet, and, after them, a statistics block
// of the agent that reports agentDrops.
func beStream(n int, agentDrops uint64) []byte {
	be := binary.BigEndian
	var b []byte
	put := func(words ...uint32) {
		for _, w := range words {
			b = be.AppendUint32(b, w)
		}
	}
	put(blockSHB, 28, byteOrderMagic, 1<<16, 0xffffffff, 0xffffffff, 28)
	put(blockIDB, 20, 1<<16, 0, 20) // Ethernet, snaplen 0
	for i := range n {
		data := bytes.Repeat([]byte{byte(i)}, 64)
		ts := uint64(1_700_000_000_000_000 + i) // microseconds
		put(blockEPB, 32+64, 0, uint32(ts>>32), uint32(ts), 64, 64)
		b = append(b, data...)
		put(32 + 64)
	}
	return appendISB(b, be, 0, 1_700_000_000_000_000+uint64(n), nil, agentDrops, dropComment(agentDrops, 0, agentDrops))
}

// TestHubBigEndian: a big-endian stream goes through, and the statistics
// blocks the hub adds for a slow subscriber are big-endian too, adding
// its drops to those the agent reported.
func TestHubBigEndian(t *testing.T) {
	const n, agentDrops = 400, 7
	hub := NewHub()
	fast := hub.Subscribe(0)
	slow := hub.Subscribe(1024)
	var fastOut syncBuffer
	slowOut := newGateWriter()
	fastDone := goErr(func() error { _, err := fast.WriteTo(&fastOut); return err })
	slowDone := goErr(func() error { _, err := slow.WriteTo(slowOut); return err })
	if err := hub.Publish(context.Background(), bytes.NewReader(beStream(n, agentDrops))); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	hub.End()
	slowOut.open()
	for _, c := range []<-chan error{fastDone, slowDone} {
		if err := mustReturn(t, "WriteTo", c); err != nil {
			t.Fatal(err)
		}
	}
	gotFast := mustRead(t, fastOut.Bytes())
	if !bytes.Equal(fastOut.Bytes(), beStream(n, agentDrops)) {
		t.Error("the fast subscriber's stream differs from the published one")
	}
	gotSlow := mustRead(t, slowOut.buf.Bytes())
	own := slow.Dropped()
	if own == 0 || uint64(len(gotSlow.packets))+own != n {
		t.Fatalf("slow subscriber: %d packets, %d dropped, want some dropped of %d", len(gotSlow.packets), own, n)
	}
	if !isSubsequence(gotSlow.packets, gotFast.packets) {
		t.Error("the slow subscriber's packets are not a subsequence of the published ones")
	}
	want := stat{OSDrop: own + agentDrops, HasDrop: true, Comments: []string{fmt.Sprintf(
		"ringtap live stream: %d packets dropped because the reader was too slow (%d by the console for this reader, %d by the agent); the job's file is complete",
		own+agentDrops, own, agentDrops)}}
	if d := cmp.Diff(want, gotSlow.lastStats()[0]); d != "" {
		t.Errorf("slow subscriber's last statistics (-want +got):\n%s", d)
	}
	if _, ok := gotSlow.pcapioStats[0]; !ok {
		t.Error("pcapio.Reader read no statistics of interface 0")
	}
	// The statistics are those that report the drops as they happen
	// (once or twice: the subscriber may have taken a batch while the
	// hub published), counting up, then the agent's, rewritten.
	if len(gotSlow.stats) < 2 {
		t.Errorf("slow subscriber's statistics %+v: want those of the drops before the agent's", gotSlow.stats)
	}
	for i, st := range gotSlow.stats[:len(gotSlow.stats)-1] {
		if st.OSDrop == 0 || st.OSDrop > own || i > 0 && st.OSDrop <= gotSlow.stats[i-1].OSDrop {
			t.Errorf("slow subscriber's statistics %+v: want drops counting up to %d before the agent's", gotSlow.stats, own)
		}
	}
	mustCheckTools(t, slowOut.buf.Bytes(), len(gotSlow.packets), len(gotSlow.stats))
	mustCheckTools(t, fastOut.Bytes(), n, 1)
}

// TestHubRace hammers a hub with publishers, subscribers that come and
// go and an End, for the race detector.
func TestHubRace(t *testing.T) {
	hub := NewHub()
	stream := mustWriteStream(t, testIfaces, testPackets(0, 200))
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 5 {
				err := hub.Publish(context.Background(), bytes.NewReader(stream))
				if err != nil && !errors.Is(err, ErrReplaced) && !errors.Is(err, ErrEnded) {
					t.Errorf("Publish: %v", err)
				}
			}
		})
	}
	for i := range 6 {
		wg.Go(func() {
			sub := hub.Subscribe(1024 * (i + 1))
			if i%2 == 0 {
				go sub.Close()
			}
			_, err := sub.WriteTo(io.Discard)
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("WriteTo: %v", err)
			}
			_ = sub.Dropped()
		})
	}
	time.Sleep(20 * time.Millisecond)
	hub.End()
	wg.Wait()
}
