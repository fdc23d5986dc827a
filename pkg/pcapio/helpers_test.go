package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// equalBytes compares packet data quickly (cmp walks slices element by
// element), nil equal to empty.
var equalBytes = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })

const baseTime = 1_700_000_000_123_456_789 // 2023-11-14T22:13:20.123456789Z

// frame returns n bytes looking like an Ethernet frame of a local
// experimental ethertype, so that tools print something sensible.
func frame(n int, seed byte) []byte {
	b := make([]byte, n)
	hdr := []byte{0x02, 0, 0, 0, 0, seed, 0x02, 0, 0, 0, 1, seed, 0x88, 0xb5}
	copy(b, hdr)
	for i := len(hdr); i < n; i++ {
		b[i] = seed + byte(i)
	}
	return b
}

// twoInterfaces are the interfaces of the pcapng golden file.
var twoInterfaces = []Interface{
	{Name: "eth0", Description: "uplink", LinkType: 1, SnapLen: 128},
	{Name: "lo", LinkType: 1, SnapLen: 65535},
}

// pcapngPackets exercise both directions, truncation by WireLen and by
// snap length, and every padding length.
func pcapngPackets() []Packet {
	return []Packet{
		{Timestamp: baseTime, WireLen: 60, Interface: 0, Direction: DirInbound, Data: frame(60, 1)},
		{Timestamp: baseTime + 1, WireLen: 1514, Interface: 0, Direction: DirOutbound, Data: frame(100, 2)},          // WireLen > len(Data)
		{Timestamp: baseTime + 999_999_999, WireLen: 200, Interface: 0, Direction: DirOutbound, Data: frame(200, 3)}, // cut to snaplen 128
		{Timestamp: baseTime + 1_000_000_000, WireLen: 61, Interface: 1, Data: frame(61, 4)},                         // pad 3
		{Timestamp: baseTime + 2_000_000_001, WireLen: 62, Interface: 1, Direction: DirInbound, Data: frame(62, 5)},  // pad 2
		{Timestamp: baseTime + 3_000_000_002, WireLen: 63, Interface: 1, Direction: DirOutbound, Data: frame(63, 6)}, // pad 1
		{Timestamp: baseTime + 4_000_000_003, WireLen: 9000, Interface: 1, Direction: DirInbound, Data: frame(9000, 7)},
		{Timestamp: baseTime + 5_000_000_004, WireLen: 1500, Interface: 0, Data: frame(15, 8)},
	}
}

// pcapngStats are written after the packets, one per interface.
var pcapngStats = []InterfaceStats{
	{Timestamp: baseTime + 6_000_000_000, Received: 5, Dropped: 1, Accepted: 4},
	{Timestamp: baseTime + 6_000_000_001, Received: 1 << 40, Dropped: 0, Accepted: 1<<40 - 1},
}

// oneInterface is the interface of the classic pcap golden file.
var oneInterface = []Interface{{Name: "eth0", LinkType: 1, SnapLen: 65535}}

func pcapPackets() []Packet {
	return []Packet{
		{Timestamp: baseTime, WireLen: 60, Data: frame(60, 1)},
		{Timestamp: baseTime + 1, WireLen: 1514, Data: frame(77, 2)},
		{Timestamp: baseTime + 1_000_000_000, WireLen: 61, Data: frame(61, 3)},
		{Timestamp: baseTime + 2_000_000_002, WireLen: 1500, Data: frame(1500, 4)},
		{Timestamp: baseTime + 3_000_000_003, WireLen: 63, Data: frame(63, 5)},
	}
}

// fixture is what a test writes.
type fixture struct {
	opts    WriterOptions
	packets []Packet
	stats   []InterfaceStats // per interface, after the packets
}

func pcapngFixture() fixture {
	return fixture{
		opts:    WriterOptions{Format: FormatPCAPNG, Application: "ringtap test", Interfaces: twoInterfaces},
		packets: pcapngPackets(),
		stats:   pcapngStats,
	}
}

func pcapFixture() fixture {
	return fixture{
		opts:    WriterOptions{Format: FormatPCAP, Interfaces: oneInterface},
		packets: pcapPackets(),
		stats:   []InterfaceStats{{Timestamp: baseTime, Received: 1}}, // dropped: pcap has no statistics
	}
}

// mustWrite encodes fx into a fresh buffer.
func mustWrite(t testing.TB, fx fixture) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, fx.opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	mustWriteSection(t, w, fx)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := w.Written(); got != int64(buf.Len()) {
		t.Errorf("Written() = %d, output has %d bytes", got, buf.Len())
	}
	return buf.Bytes()
}

// mustWriteSection writes fx's packets and statistics with w.
func mustWriteSection(t testing.TB, w *Writer, fx fixture) {
	t.Helper()
	for i := range fx.packets {
		if err := w.WritePacket(&fx.packets[i]); err != nil {
			t.Fatalf("WritePacket(%d): %v", i, err)
		}
	}
	for i, s := range fx.stats {
		if err := w.WriteInterfaceStats(i, s); err != nil {
			t.Fatalf("WriteInterfaceStats(%d): %v", i, err)
		}
	}
	if got, want := w.Packets(), uint64(len(fx.packets)); got != want {
		t.Errorf("Packets() = %d, want %d", got, want)
	}
}

// readResult is everything a Reader reports about a file.
type readResult struct {
	Format      Format
	Application string
	Interfaces  []Interface
	Packets     []Packet
	Stats       map[int]InterfaceStats
}

// readAll reads a whole file, copying packet data.
func readAll(b []byte) (readResult, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return readResult{}, err
	}
	var res readResult
	for {
		var p Packet
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		p.Data = bytes.Clone(p.Data)
		res.Packets = append(res.Packets, p)
	}
	res.Format, res.Application, res.Interfaces, res.Stats = r.Format(), r.Application(), r.Interfaces(), r.Stats()
	return res, nil
}

func mustReadAll(t testing.TB, b []byte) readResult {
	t.Helper()
	res, err := readAll(b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return res
}

// expected is what reading back fx gives: data cut to the snap length,
// WireLen at least len(Data), and for classic pcap a single interface and
// no directions or statistics.
func expected(fx fixture) readResult {
	res := readResult{Format: fx.opts.Format, Stats: map[int]InterfaceStats{}}
	if fx.opts.Format == FormatPCAP {
		var snap uint32
		for _, ifc := range fx.opts.Interfaces {
			snap = max(snap, ifc.SnapLen)
		}
		res.Interfaces = []Interface{{LinkType: fx.opts.Interfaces[0].LinkType, SnapLen: snap}}
	} else {
		res.Application = fx.opts.Application
		res.Interfaces = append(res.Interfaces, fx.opts.Interfaces...)
		for i, s := range fx.stats {
			res.Stats[i] = s
		}
	}
	for _, p := range fx.packets {
		p.WireLen = max(p.WireLen, uint32(len(p.Data)))
		if snap := fx.opts.Interfaces[p.Interface].SnapLen; snap != 0 && uint32(len(p.Data)) > snap {
			p.Data = p.Data[:snap]
		}
		if fx.opts.Format == FormatPCAP {
			p.Interface, p.Direction = 0, DirUnknown
		}
		res.Packets = append(res.Packets, p)
	}
	return res
}

// diffResult compares read results, printing -want +got.
func diffResult(want, got readResult) string {
	return cmp.Diff(want, got, equalBytes)
}

// builder assembles pcapng blocks and pcap records by hand, in either
// byte order, for inputs our writer never produces.
type builder struct {
	order binary.AppendByteOrder
	b     []byte
}

func (b *builder) u16(v ...uint16) *builder {
	for _, x := range v {
		b.b = b.order.AppendUint16(b.b, x)
	}
	return b
}

func (b *builder) u32(v ...uint32) *builder {
	for _, x := range v {
		b.b = b.order.AppendUint32(b.b, x)
	}
	return b
}

func (b *builder) raw(v ...byte) *builder { b.b = append(b.b, v...); return b }

// block appends a block of type typ around body, which must be a multiple
// of 4 bytes long.
func (b *builder) block(typ uint32, body []byte) *builder {
	n := uint32(12 + len(body))
	return b.u32(typ, n).raw(body...).u32(n)
}

// body builds a block body in b's byte order.
func (b *builder) body() *builder { return &builder{order: b.order} }

// opt appends an option, padded.
func (b *builder) opt(code uint16, v []byte) *builder {
	b.u16(code, uint16(len(v))).raw(v...)
	return b.raw(make([]byte, pad4(len(v))-len(v))...)
}

// shb appends a section header with an optional shb_userappl.
func (b *builder) shb(app string) *builder {
	body := b.body().u32(byteOrderMagic).u16(1, 0).u32(0xffffffff, 0xffffffff)
	if app != "" {
		body.opt(optShbUserApp, []byte(app)).u32(0)
	}
	return b.block(blockSHB, body.b)
}

// idb appends an interface description with the given options appended
// verbatim.
func (b *builder) idb(linkType uint16, snap uint32, opts []byte) *builder {
	return b.block(blockIDB, b.body().u16(linkType, 0).u32(snap).raw(opts...).b)
}

// epb appends an enhanced packet block.
func (b *builder) epb(id uint32, ts uint64, wire uint32, data []byte, opts []byte) *builder {
	body := b.body().u32(id, uint32(ts>>32), uint32(ts), uint32(len(data)), wire).raw(data...)
	body.raw(make([]byte, pad4(len(data))-len(data))...).raw(opts...)
	return b.block(blockEPB, body.b)
}
