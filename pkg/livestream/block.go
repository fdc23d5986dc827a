package livestream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// ErrFormat is wrapped by the errors about a malformed pcapng stream.
var ErrFormat = errors.New("malformed pcapng stream")

// pcapng block types and option codes this package reads or writes.
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 1
	blockPB  = 2 // obsolete packet block
	blockSPB = 3
	blockISB = 5
	blockEPB = 6

	byteOrderMagic = 0x1a2b3c4d

	optEnd     = 0
	optComment = 1
	optIsbDrop = 7 // isb_osdrop

	// maxBlock bounds a block, as pkg/pcapio does.
	maxBlock = 16 << 20
)

// commentPrefix starts every comment this package writes.
const commentPrefix = "ringtap live stream: "

// block is one pcapng block, whole: type, lengths and body.
type block struct {
	typ  uint32
	big  bool // the section is big endian
	data []byte
}

func (b block) order() binary.ByteOrder { return byteOrder(b.big) }

func byteOrder(big bool) binary.ByteOrder {
	if big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// isPacket reports whether blocks of type typ carry a packet: the blocks
// a full queue drops.
func isPacket(typ uint32) bool { return typ == blockEPB || typ == blockSPB || typ == blockPB }

// packetInfo returns the interface and the raw timestamp (in the
// interface's units) of a packet block; hasTS is false for a simple
// packet block (interface 0, no timestamp) and a block too short.
func (b block) packetInfo() (iface uint32, ts uint64, hasTS bool) {
	o := b.order()
	switch b.typ {
	case blockEPB:
		if len(b.data) < 20 {
			return 0, 0, false
		}
		return o.Uint32(b.data[8:]), uint64(o.Uint32(b.data[12:]))<<32 | uint64(o.Uint32(b.data[16:])), true
	case blockPB:
		if len(b.data) < 20 {
			return 0, 0, false
		}
		return uint32(o.Uint16(b.data[8:])), uint64(o.Uint32(b.data[12:]))<<32 | uint64(o.Uint32(b.data[16:])), true
	}
	return 0, 0, false // simple packet block: interface 0, no timestamp
}

// blockReader reads a pcapng stream block by block.
type blockReader struct {
	r       *bufio.Reader
	off     int64
	big     bool
	started bool // a section header was read
}

func newBlockReader(r io.Reader) *blockReader {
	return &blockReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next reads the next whole block. At the end of the stream, on a block
// boundary, it returns io.EOF; a stream cut inside a block gives
// io.ErrUnexpectedEOF.
func (br *blockReader) next() (block, error) {
	start := br.off
	var h [12]byte
	n, err := io.ReadFull(br.r, h[:8])
	br.off += int64(n)
	if err != nil {
		if err == io.EOF {
			return block{}, io.EOF
		}
		return block{}, fmt.Errorf("pcapng block at byte %d: %w", start, err)
	}
	typ := binary.LittleEndian.Uint32(h[:]) // a section header's type reads the same in both orders
	hlen := 8
	if typ == blockSHB {
		n, err := io.ReadFull(br.r, h[8:12])
		br.off += int64(n)
		if err != nil {
			return block{}, fmt.Errorf("pcapng section header at byte %d: %w", start, unexpected(err))
		}
		switch {
		case binary.LittleEndian.Uint32(h[8:]) == byteOrderMagic:
			br.big = false
		case binary.BigEndian.Uint32(h[8:]) == byteOrderMagic:
			br.big = true
		default:
			return block{}, fmt.Errorf("pcapng section header at byte %d: byte-order magic %x: %w", start, h[8:12], ErrFormat)
		}
		br.started = true
		hlen = 12
	} else {
		typ = byteOrder(br.big).Uint32(h[:])
	}
	if !br.started {
		return block{}, fmt.Errorf("the stream does not start with a pcapng section header block (type %#x at byte %d): %w", typ, start, ErrFormat)
	}
	o := byteOrder(br.big)
	size := o.Uint32(h[4:])
	least := uint32(12)
	if typ == blockSHB {
		least = 28
	}
	switch {
	case size < least || size%4 != 0:
		return block{}, fmt.Errorf("pcapng block of type %#x at byte %d: length %d: %w", typ, start, size, ErrFormat)
	case size > maxBlock:
		return block{}, fmt.Errorf("pcapng block of type %#x at byte %d: length %d above the %d limit: %w", typ, start, size, maxBlock, ErrFormat)
	}
	data := make([]byte, size)
	copy(data, h[:hlen])
	n, err = io.ReadFull(br.r, data[hlen:])
	br.off += int64(n)
	if err != nil {
		return block{}, fmt.Errorf("pcapng block of type %#x at byte %d: %w", typ, start, unexpected(err))
	}
	if tail := o.Uint32(data[size-4:]); tail != size {
		return block{}, fmt.Errorf("pcapng block of type %#x at byte %d: leading length %d, trailing %d: %w", typ, start, size, tail, ErrFormat)
	}
	return block{typ: typ, big: br.big, data: data}, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isbOption is one option of an interface statistics block, as read.
type isbOption struct {
	code uint16
	val  []byte
}

// parseISB returns an interface statistics block's interface, raw
// timestamp, isb_osdrop (0 when absent) and its other options, leaving
// out isb_osdrop and the comments this package wrote.
func parseISB(b block) (iface uint32, ts uint64, osdrop uint64, rest []isbOption, ok bool) {
	if len(b.data) < 24 {
		return 0, 0, 0, nil, false
	}
	o := b.order()
	iface = o.Uint32(b.data[8:])
	ts = uint64(o.Uint32(b.data[12:]))<<32 | uint64(o.Uint32(b.data[16:]))
	opts := b.data[20 : len(b.data)-4]
	for len(opts) >= 4 {
		code, n := o.Uint16(opts[0:]), int(o.Uint16(opts[2:]))
		if code == optEnd || 4+pad4(n) > len(opts) {
			break
		}
		val := opts[4 : 4+n]
		switch {
		case code == optIsbDrop && n == 8:
			osdrop = o.Uint64(val)
		case code == optComment && strings.HasPrefix(string(val), commentPrefix):
		default:
			rest = append(rest, isbOption{code, val})
		}
		opts = opts[4+pad4(n):]
	}
	return iface, ts, osdrop, rest, true
}

// appendISB appends an interface statistics block in byte order o: the
// options rest, then isb_osdrop and, when comment is not "", an
// opt_comment.
func appendISB(dst []byte, o binary.ByteOrder, iface uint32, ts uint64, rest []isbOption, osdrop uint64, comment string) []byte {
	if len(comment) > math.MaxUint16 {
		comment = comment[:math.MaxUint16]
	}
	size := 20 + 12 + 4 + 4 // header, isb_osdrop, opt_endofopt, trailing length
	for _, opt := range rest {
		size += 4 + pad4(len(opt.val))
	}
	if comment != "" {
		size += 4 + pad4(len(comment))
	}
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	b := dst[start:]
	o.PutUint32(b[0:], blockISB)
	o.PutUint32(b[4:], uint32(size))
	o.PutUint32(b[8:], iface)
	o.PutUint32(b[12:], uint32(ts>>32))
	o.PutUint32(b[16:], uint32(ts))
	p := b[20:]
	put := func(code uint16, val []byte) {
		o.PutUint16(p[0:], code)
		o.PutUint16(p[2:], uint16(len(val)))
		copy(p[4:], val) // padding is already 0
		p = p[4+pad4(len(val)):]
	}
	for _, opt := range rest {
		put(opt.code, opt.val)
	}
	var v [8]byte
	o.PutUint64(v[:], osdrop)
	put(optIsbDrop, v[:])
	if comment != "" {
		put(optComment, []byte(comment))
	}
	o.PutUint32(p[0:], optEnd)
	o.PutUint32(p[4:], uint32(size))
	return dst
}

// dropComment is the opt_comment of a statistics block that counts
// dropped packets: total, of which console were dropped by the console
// for this reader and agent by the agent.
func dropComment(total, console, agent uint64) string {
	switch {
	case total == 0:
		return ""
	case console > 0 && agent > 0:
		return fmt.Sprintf("%s%d packets dropped because the reader was too slow (%d by the console for this reader, %d by the agent); the job's file is complete",
			commentPrefix, total, console, agent)
	}
	return fmt.Sprintf("%s%d packets dropped because the reader was too slow; the job's file is complete", commentPrefix, total)
}

func pad4(n int) int { return (n + 3) &^ 3 }
