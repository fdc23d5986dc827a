package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	sameLink := []Interface{{Name: "a", LinkType: 1, SnapLen: 100}, {Name: "b", LinkType: 1, SnapLen: 200}}
	for _, tc := range []struct {
		name string
		fx   fixture
	}{
		{"pcapng", pcapngFixture()},
		{"pcap", pcapFixture()},
		{"pcapng without names or application", fixture{
			opts:    WriterOptions{Interfaces: []Interface{{LinkType: 113}}},
			packets: []Packet{{Timestamp: 1, Data: []byte{1}}, {Timestamp: 2, WireLen: 3, Data: []byte{1, 2}}},
		}},
		{"pcap from two interfaces of one link type", fixture{
			opts: WriterOptions{Format: FormatPCAP, Interfaces: sameLink},
			packets: []Packet{
				{Timestamp: 1, Interface: 0, Direction: DirInbound, Data: frame(150, 1)},
				{Timestamp: 2, Interface: 1, Direction: DirOutbound, Data: frame(250, 2)},
			},
		}},
		{"empty packets", fixture{
			opts:    WriterOptions{Interfaces: sameLink},
			packets: []Packet{{Timestamp: 5}, {Timestamp: 6, WireLen: 60, Interface: 1, Direction: DirOutbound}},
		}},
		{"pcap extreme timestamps", fixture{
			opts:    WriterOptions{Format: FormatPCAP, Interfaces: sameLink},
			packets: []Packet{{Timestamp: 0, Data: []byte{1}}, {Timestamp: maxPcapTimestamp, Data: []byte{2}}},
		}},
		{"pcapng extreme timestamps", fixture{
			opts:    WriterOptions{Interfaces: sameLink},
			packets: []Packet{{Timestamp: 0, Data: []byte{1}}, {Timestamp: math.MaxInt64, Data: []byte{2}}},
			stats:   []InterfaceStats{{Timestamp: math.MaxInt64, Received: math.MaxUint64}},
		}},
		{"unlimited snap length", fixture{
			opts:    WriterOptions{Interfaces: []Interface{{Name: "any", LinkType: 276}}},
			packets: []Packet{{Timestamp: 7, Data: frame(100000, 9)}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustReadAll(t, mustWrite(t, tc.fx))
			if diff := diffResult(expected(tc.fx), got); diff != "" {
				t.Errorf("reader(writer(x)) (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRoundTripSections writes several sections, into one stream (a
// multi-section pcapng) and into separate files (rotation).
func TestRoundTripSections(t *testing.T) {
	t.Run("one stream", func(t *testing.T) {
		fx := pcapngFixture()
		var buf bytes.Buffer
		w, err := NewWriter(&buf, fx.opts)
		if err != nil {
			t.Fatal(err)
		}
		mustWriteSection(t, w, fx)
		if err := w.StartSection(&buf); err != nil {
			t.Fatal(err)
		}
		second := fixture{packets: fx.packets[:3], stats: fx.stats[:1]}
		mustWriteSection(t, w, second)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// Interfaces count across sections: the second section's
		// interface 0 is interface 2.
		want := expected(fx)
		want.Interfaces = append(want.Interfaces, fx.opts.Interfaces...)
		for _, p := range expected(fixture{opts: fx.opts, packets: second.packets}).Packets {
			p.Interface += len(fx.opts.Interfaces)
			want.Packets = append(want.Packets, p)
		}
		want.Stats[2] = fx.stats[0]
		if diff := diffResult(want, mustReadAll(t, buf.Bytes())); diff != "" {
			t.Errorf("two sections (-want +got):\n%s", diff)
		}
	})
	for _, fx := range []fixture{pcapngFixture(), pcapFixture()} {
		t.Run("rotation/"+fx.opts.Format.String(), func(t *testing.T) {
			files := make([]bytes.Buffer, 3)
			w, err := NewWriter(&files[0], fx.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range files {
				if i > 0 {
					if err := w.StartSection(&files[i]); err != nil {
						t.Fatal(err)
					}
				}
				mustWriteSection(t, w, fx)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			for i := range files {
				if diff := diffResult(expected(fx), mustReadAll(t, files[i].Bytes())); diff != "" {
					t.Errorf("file %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestReaderHandmade reads inputs our writer never produces: big endian,
// other timestamp resolutions, simple and obsolete packet blocks, unknown
// blocks, micro- and nanosecond pcap in both byte orders.
func TestReaderHandmade(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	ng := func(order binary.AppendByteOrder) *builder { return &builder{order: order} }
	flags := func(order binary.AppendByteOrder, v uint32) []byte {
		b := &builder{order: order}
		return b.opt(optEpbFlags, b.body().u32(v).b).u32(0).b
	}
	opts := func(order binary.AppendByteOrder, kv ...any) []byte {
		b := &builder{order: order}
		for i := 0; i < len(kv); i += 2 {
			b.opt(kv[i].(uint16), kv[i+1].([]byte))
		}
		return b.u32(0).b
	}
	u64 := func(order binary.AppendByteOrder, v uint64) []byte { return order.AppendUint64(nil, v) }
	data := frame(13, 1)
	isb := func(order binary.AppendByteOrder, id uint32, ts uint64, o []byte) []byte {
		b := ng(order)
		return b.block(blockISB, b.body().u32(id, uint32(ts>>32), uint32(ts)).raw(o...).b).b
	}

	for _, tc := range []struct {
		name string
		in   []byte
		want readResult
	}{
		{
			name: "big-endian pcapng, default microseconds, NUL-terminated strings",
			in: ng(be).shb("tool\x00").
				idb(1, 96, opts(be, uint16(optIfName), []byte("eth9\x00\x00"), uint16(optIfDesc), []byte("d"))).
				epb(0, 1_700_000_000_123_456, 20, data, flags(be, flagsInbound)).
				raw(isb(be, 0, 1_700_000_001_000_000, opts(be, uint16(optIsbRecv), u64(be, 9), uint16(optIsbDrop), u64(be, 8), uint16(optIsbAccept), u64(be, 7)))...).b,
			want: readResult{
				Format: FormatPCAPNG, Application: "tool",
				Interfaces: []Interface{{Name: "eth9", Description: "d", LinkType: 1, SnapLen: 96}},
				Packets:    []Packet{{Timestamp: 1_700_000_000_123_456_000, WireLen: 20, Direction: DirInbound, Data: data}},
				Stats:      map[int]InterfaceStats{0: {Timestamp: 1_700_000_001_000_000_000, Received: 9, Dropped: 8, Accepted: 7}},
			},
		},
		{
			name: "timestamp resolutions and offsets",
			in: ng(le).shb("").
				idb(1, 0, opts(le, uint16(optIfTsresol), []byte{0x80 | 10})).                              // 2^-10 s
				idb(1, 0, opts(le, uint16(optIfTsresol), []byte{0x80 | 30})).                              // 2^-30 s
				idb(1, 0, opts(le, uint16(optIfTsresol), []byte{3}, uint16(optIfTsoffset), u64(le, 100))). // ms, +100 s
				idb(1, 0, opts(le, uint16(optIfTsresol), []byte{12})).                                     // ps
				idb(1, 0, opts(le, uint16(optIfTsresol), []byte{0})).                                      // s
				idb(1, 0, opts(le, uint16(optIfTsresol), []byte{0x80})).                                   // 2^0 s
				epb(0, 5<<10|512, 1, []byte{1}, nil).                                                      // 5.5 s
				epb(1, 3<<30|1<<29|1, 1, []byte{2}, nil).                                                  // 3.5 s + 0.93 ns
				epb(2, 1500, 1, []byte{3}, nil).                                                           // 101.5 s
				epb(3, 1_000_000_000_001_999, 1, []byte{4}, nil).                                          // 1000 s + 1.999 ns
				epb(4, 42, 1, []byte{5}, nil).
				epb(5, 43, 1, []byte{6}, nil).b,
			want: readResult{
				Format:     FormatPCAPNG,
				Interfaces: []Interface{{LinkType: 1}, {LinkType: 1}, {LinkType: 1}, {LinkType: 1}, {LinkType: 1}, {LinkType: 1}},
				Packets: []Packet{
					{Timestamp: 5_500_000_000, WireLen: 1, Interface: 0, Data: []byte{1}},
					{Timestamp: 3_500_000_000, WireLen: 1, Interface: 1, Data: []byte{2}},
					{Timestamp: 101_500_000_000, WireLen: 1, Interface: 2, Data: []byte{3}},
					{Timestamp: 1000_000_000_001, WireLen: 1, Interface: 3, Data: []byte{4}},
					{Timestamp: 42_000_000_000, WireLen: 1, Interface: 4, Data: []byte{5}},
					{Timestamp: 43_000_000_000, WireLen: 1, Interface: 5, Data: []byte{6}},
				},
			},
		},
		{
			name: "simple and obsolete packet blocks",
			in: func() []byte {
				b := ng(le).shb("").idb(1, 8, nil)
				spb := b.body().u32(10).raw(frame(12, 2)...).b
				short := b.body().u32(3).raw(frame(4, 3)...).b // wire shorter than the padded data
				pb := b.body().u16(0, 0).u32(0, 77, 5, 5).raw(frame(5, 4)...).raw(0, 0, 0).raw(flags(le, flagsOutbound)...).b
				return b.block(blockSPB, spb).block(blockSPB, short).block(blockPB, pb).b
			}(),
			want: readResult{
				Format:     FormatPCAPNG,
				Interfaces: []Interface{{LinkType: 1, SnapLen: 8}},
				Packets: []Packet{
					{WireLen: 10, Data: frame(8, 2)},
					{WireLen: 3, Data: frame(3, 3)},
					{Timestamp: 77_000, WireLen: 5, Direction: DirOutbound, Data: frame(5, 4)},
				},
			},
		},
		{
			name: "unknown blocks and options are skipped",
			in: func() []byte {
				b := ng(le).shb("x").idb(1, 0, opts(le, uint16(1), []byte("a comment"), uint16(0x8bad), []byte{1, 2, 3}))
				b.block(4, b.body().u32(0, 0).b)             // name resolution
				b.block(0x0a, b.body().u32(1, 0).b)          // decryption secrets
				b.block(0x40000bad, b.body().u32(1, 2, 3).b) // custom
				b.block(0xbad, nil)                          // empty body
				b.epb(0, 7, 2, []byte{9, 9}, opts(le, uint16(1), []byte("comment"), uint16(optEpbFlags), b.body().u32(0x10|flagsOutbound).b))
				b.epb(0, 8, 2, []byte{8, 8}, flags(le, 3)) // both direction bits: invalid
				return b.raw(isb(le, 0, 9, nil)...).b
			}(),
			want: readResult{
				Format: FormatPCAPNG, Application: "x",
				Interfaces: []Interface{{LinkType: 1}},
				Packets: []Packet{
					{Timestamp: 7_000, WireLen: 2, Direction: DirOutbound, Data: []byte{9, 9}},
					{Timestamp: 8_000, WireLen: 2, Data: []byte{8, 8}},
				},
				Stats: map[int]InterfaceStats{0: {Timestamp: 9_000}},
			},
		},
		{
			name: "options without opt_endofopt",
			in: func() []byte {
				b := ng(le)
				b.block(blockSHB, b.body().u32(byteOrderMagic).u16(1, 0).u32(0xffffffff, 0xffffffff).opt(optShbUserApp, []byte("abcde")).b)
				b.idb(1, 0, b.body().opt(optIfName, []byte("n")).b)
				return b.epb(0, 1, 1, []byte{1}, b.body().opt(optEpbFlags, b.body().u32(flagsInbound).b).b).b
			}(),
			want: readResult{
				Format: FormatPCAPNG, Application: "abcde",
				Interfaces: []Interface{{Name: "n", LinkType: 1}},
				Packets:    []Packet{{Timestamp: 1_000, WireLen: 1, Direction: DirInbound, Data: []byte{1}}},
			},
		},
		{
			name: "sections of both byte orders",
			in: append(
				ng(le).shb("one").idb(1, 0, opts(le, uint16(optIfName), []byte("a"))).epb(0, 1, 1, []byte{1}, nil).b,
				ng(be).shb("two").idb(101, 0, opts(be, uint16(optIfName), []byte("b"))).idb(1, 0, nil).epb(1, 2, 1, []byte{2}, nil).epb(0, 3, 1, []byte{3}, flags(be, flagsInbound)).b...),
			want: readResult{
				Format: FormatPCAPNG, Application: "two",
				Interfaces: []Interface{{Name: "a", LinkType: 1}, {Name: "b", LinkType: 101}, {LinkType: 1}},
				Packets: []Packet{
					{Timestamp: 1_000, WireLen: 1, Interface: 0, Data: []byte{1}},
					{Timestamp: 2_000, WireLen: 1, Interface: 2, Data: []byte{2}},
					{Timestamp: 3_000, WireLen: 1, Interface: 1, Direction: DirInbound, Data: []byte{3}},
				},
			},
		},
		{
			name: "pcapng without packets",
			in:   ng(le).shb("idle").idb(1, 1500, nil).b,
			want: readResult{Format: FormatPCAPNG, Application: "idle", Interfaces: []Interface{{LinkType: 1, SnapLen: 1500}}},
		},
		{
			name: "little-endian microsecond pcap",
			in:   ng(le).u32(magicPcapMicro).u16(2, 4).u32(0, 0, 262144, 1).u32(1_700_000_000, 999_999, 3, 60).raw(1, 2, 3).b,
			want: readResult{
				Format:     FormatPCAP,
				Interfaces: []Interface{{LinkType: 1, SnapLen: 262144}},
				Packets:    []Packet{{Timestamp: 1_700_000_000_999_999_000, WireLen: 60, Data: []byte{1, 2, 3}}},
			},
		},
		{
			name: "big-endian microsecond pcap with FCS bits in the link type",
			in:   ng(be).u32(magicPcapMicro).u16(2, 4).u32(0, 0, 96, 0x1000_0000|105).u32(1, 2, 1, 1).raw(7).u32(3, 4, 0, 0).b,
			want: readResult{
				Format:     FormatPCAP,
				Interfaces: []Interface{{LinkType: 105, SnapLen: 96}},
				Packets:    []Packet{{Timestamp: 1_000_002_000, WireLen: 1, Data: []byte{7}}, {Timestamp: 3_000_004_000}},
			},
		},
		{
			name: "big-endian nanosecond pcap",
			in:   ng(be).u32(magicPcapNano).u16(2, 4).u32(0, 0, 65535, 1).u32(1, 2, 2, 9).raw(7, 8).b,
			want: readResult{
				Format:     FormatPCAP,
				Interfaces: []Interface{{LinkType: 1, SnapLen: 65535}},
				Packets:    []Packet{{Timestamp: 1_000_000_002, WireLen: 9, Data: []byte{7, 8}}},
			},
		},
		{
			name: "pcap without packets",
			in:   ng(le).u32(magicPcapNano).u16(2, 4).u32(0, 0, 65535, 1).b,
			want: readResult{Format: FormatPCAP, Interfaces: []Interface{{LinkType: 1, SnapLen: 65535}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want.Stats == nil {
				tc.want.Stats = map[int]InterfaceStats{}
			}
			got, err := readAll(tc.in)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if diff := diffResult(tc.want, got); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInterfacesAfterNewReader checks the interface descriptions at the
// start of a pcapng are known before the first packet.
func TestInterfacesAfterNewReader(t *testing.T) {
	r, err := NewReader(bytes.NewReader(mustWrite(t, pcapngFixture())))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(twoInterfaces, r.Interfaces()); diff != "" {
		t.Errorf("Interfaces() (-want +got):\n%s", diff)
	}
	if got := r.Application(); got != "ringtap test" {
		t.Errorf("Application() = %q", got)
	}
}

func TestReadMalformed(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	ng := func() *builder { return (&builder{order: le}).shb("") }
	eth := func() *builder { return ng().idb(1, 0, nil) }
	pcapHdr := func() *builder { return (&builder{order: le}).u32(magicPcapNano).u16(2, 4).u32(0, 0, 65535, 1) }
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"two bytes", []byte{0xd4, 0xc3}, io.ErrUnexpectedEOF},
		{"unknown magic", []byte("GIF89a\x00\x00\x00\x00"), ErrFormat},
		{"pcap header cut", pcapHdr().b[:10], io.ErrUnexpectedEOF},
		{"pcap version 3", (&builder{order: be}).u32(magicPcapMicro).u16(3, 0).u32(0, 0, 0, 1).b, ErrFormat},
		{"pcap record header cut", pcapHdr().u32(1, 2).b, io.ErrUnexpectedEOF},
		{"pcap record too large", pcapHdr().u32(1, 2, maxBlock+1, 0).b, ErrFormat},
		{"pcap record cut", pcapHdr().u32(1, 2, 10, 10).raw(1, 2, 3).b, io.ErrUnexpectedEOF},
		{"pcap record claims 16 MiB", pcapHdr().u32(1, 2, maxBlock, maxBlock).raw(1, 2, 3).b, io.ErrUnexpectedEOF},
		{"section header cut", ng().b[:6], io.ErrUnexpectedEOF},
		{"section header body cut", ng().b[:20], io.ErrUnexpectedEOF},
		{"bad byte-order magic", (&builder{order: le}).u32(blockSHB, 28, 0x12345678, 1, 0, 0, 28).b, ErrFormat},
		{"section header too short", (&builder{order: le}).u32(blockSHB, 24, byteOrderMagic, 1, 0, 24).b, ErrFormat},
		{"section header length odd", (&builder{order: le}).u32(blockSHB, 30, byteOrderMagic, 1, 0, 0, 0, 0).b, ErrFormat},
		{"section header huge", (&builder{order: le}).u32(blockSHB, 0xfffffffc, byteOrderMagic, 1, 0, 0, 0).b, ErrFormat},
		{"pcapng version 2", (&builder{order: le}).u32(blockSHB, 28, byteOrderMagic).u16(2, 0).u32(0, 0, 28).b, ErrFormat},
		{"section header lengths disagree", (&builder{order: le}).u32(blockSHB, 28, byteOrderMagic, 1, 0, 0, 32).b, ErrFormat},
		{"block header cut", ng().u32(blockEPB).b, io.ErrUnexpectedEOF},
		{"block length below 12", ng().u32(blockEPB, 8, 8).b, ErrFormat},
		{"block length odd", ng().u32(blockEPB, 13, 0, 0).b, ErrFormat},
		{"block length above 16 MiB", ng().u32(blockEPB, maxBlock+4).b, ErrFormat},
		{"block length 4 GiB", ng().u32(0xbad, 0xfffffffc).b, ErrFormat},
		{"block cut", eth().epb(0, 0, 4, []byte{1, 2, 3, 4}, nil).b[:ng().idb(1, 0, nil).len()+20], io.ErrUnexpectedEOF},
		{"block claims 16 MiB", ng().u32(blockEPB, maxBlock, 0, 0, 0).b, io.ErrUnexpectedEOF},
		{"block trailing length differs", ng().u32(blockIDB, 20, 1, 0, 24).b, ErrFormat},
		{"unknown block cut", ng().u32(0xbad, 16, 0).b, io.ErrUnexpectedEOF},
		{"unknown block trailing length differs", ng().u32(0xbad, 16, 0, 20).b, ErrFormat},
		{"unknown block trailer cut", ng().u32(0xbad, 16, 0, 16).b[:ng().len()+14], io.ErrUnexpectedEOF},
		{"interface block too short", ng().block(blockIDB, []byte{1, 0, 0, 0}).b, ErrFormat},
		{"if_tsresol 10^-20", ng().idb(1, 0, (&builder{order: le}).opt(optIfTsresol, []byte{20}).b).b, ErrFormat},
		{"if_tsresol 2^-64", ng().idb(1, 0, (&builder{order: le}).opt(optIfTsresol, []byte{0x80 | 64}).b).b, ErrFormat},
		{"if_tsresol of 2 bytes", ng().idb(1, 0, (&builder{order: le}).opt(optIfTsresol, []byte{6, 0}).b).b, ErrFormat},
		{"if_tsoffset of 4 bytes", ng().idb(1, 0, (&builder{order: le}).opt(optIfTsoffset, []byte{6, 0, 0, 0}).b).b, ErrFormat},
		{"option overruns block", ng().idb(1, 0, (&builder{order: le}).u16(optIfName, 5).raw('a', 'b', 'c', 'd').b).b, ErrFormat},
		{"section option overruns block", (&builder{order: le}).u32(blockSHB, 32, byteOrderMagic, 1, 0, 0).u16(4, 100).u32(32).b, ErrFormat},
		{"packet for undefined interface", eth().epb(1, 0, 1, []byte{1}, nil).b, ErrFormat},
		{"packet before any interface", ng().epb(0, 0, 1, []byte{1}, nil).b, ErrFormat},
		{"packet block too short", eth().block(blockEPB, make([]byte, 16)).b, ErrFormat},
		{"packet longer than its block", eth().block(blockEPB, (&builder{order: le}).u32(0, 0, 0, 5, 5).raw(1, 2, 3, 4).b).b, ErrFormat},
		{"packet option overruns block", eth().epb(0, 0, 1, []byte{1}, (&builder{order: le}).u16(optEpbFlags, 8).u32(1).b).b, ErrFormat},
		{"obsolete packet for undefined interface", eth().block(blockPB, (&builder{order: le}).u16(3, 0).u32(0, 0, 0, 0).b).b, ErrFormat},
		{"simple packet before any interface", ng().block(blockSPB, (&builder{order: le}).u32(0).b).b, ErrFormat},
		{"simple packet block empty", eth().block(blockSPB, nil).b, ErrFormat},
		{"statistics for undefined interface", eth().block(blockISB, (&builder{order: le}).u32(1, 0, 0).b).b, ErrFormat},
		{"statistics block too short", eth().block(blockISB, (&builder{order: le}).u32(0, 0).b).b, ErrFormat},
		{"statistics option overruns block", eth().block(blockISB, (&builder{order: le}).u32(0, 0, 0).u16(optIsbRecv, 8).u32(0).b).b, ErrFormat},
		{"second section corrupt", eth().u32(blockSHB, 28, 0xdeadbeef).b, ErrFormat},
		{"second section cut", eth().u32(blockSHB, 28).b, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read error = %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func (b *builder) len() int { return len(b.b) }

// TestReaderErrorIsSticky checks Next keeps failing after an error rather
// than reading from the middle of a block.
func TestReaderErrorIsSticky(t *testing.T) {
	b := (&builder{order: binary.LittleEndian}).shb("").idb(1, 0, nil).epb(5, 0, 1, []byte{1}, nil).epb(0, 0, 1, []byte{1}, nil)
	r, err := NewReader(bytes.NewReader(b.b))
	if err != nil {
		t.Fatal(err)
	}
	var p Packet
	first := r.Next(&p)
	if !errors.Is(first, ErrFormat) {
		t.Fatalf("Next error = %v, want ErrFormat", first)
	}
	if again := r.Next(&p); again != first {
		t.Errorf("second Next error = %v, want %v", again, first)
	}
}

// TestReaderBoundedMemory checks a block claiming 16 MiB in a short file
// does not cost 16 MiB.
func TestReaderBoundedMemory(t *testing.T) {
	in := (&builder{order: binary.LittleEndian}).shb("").u32(blockEPB, maxBlock, 0, 0, 0).b
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := readAll(in); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read error = %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRead := (after.TotalAlloc - before.TotalAlloc) / 10; perRead > 1<<20 {
		t.Errorf("reading a 60-byte file allocated %d bytes", perRead)
	}
}

// TestStatsIsACopy checks callers cannot change the Reader's statistics.
func TestStatsIsACopy(t *testing.T) {
	r, err := NewReader(bytes.NewReader(mustWrite(t, pcapngFixture())))
	if err != nil {
		t.Fatal(err)
	}
	var p Packet
	for r.Next(&p) == nil {
	}
	r.Stats()[0] = InterfaceStats{}
	if diff := cmp.Diff(pcapngStats[0], r.Stats()[0]); diff != "" {
		t.Errorf("Stats()[0] (-want +got):\n%s", diff)
	}
}
