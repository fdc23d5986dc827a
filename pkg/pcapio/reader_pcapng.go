package pcapio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
)

// startPcapng reads the first section header, whose type is in r.hdr[:4],
// and the interface descriptions that follow it.
func (r *Reader) startPcapng() error {
	if err := r.readFull(r.hdr[4:8]); err != nil {
		return fmt.Errorf("pcapng section header block at byte 0: %w", unexpected(err))
	}
	if err := r.readSHB(0); err != nil {
		return err
	}
	r.good = r.off
	for {
		b, err := r.br.Peek(4)
		if err != nil || r.order.Uint32(b) != blockIDB {
			return nil // Next deals with whatever comes
		}
		_, body, start, err := r.readBlock()
		if err != nil {
			return err
		}
		if err := r.parseIDB(body, start); err != nil {
			return err
		}
		r.good = r.off
	}
}

// nextBlock reads blocks until a packet.
func (r *Reader) nextBlock(p *Packet) error {
	for {
		typ, body, start, err := r.readBlock()
		if err != nil {
			return err
		}
		switch typ {
		case blockEPB, blockPB:
			return r.parsePacket(typ, body, start, p)
		case blockSPB:
			return r.parseSPB(body, start, p)
		case blockIDB:
			err = r.parseIDB(body, start)
		case blockISB:
			err = r.parseISB(body, start)
		}
		if err != nil {
			return err
		}
		r.good = r.off
	}
}

// readBlock reads the next block. Its body leaves out the type, the
// lengths and, for a section header, the byte-order magic; it is nil for
// the block types the Reader skips. A section header is parsed here,
// since it sets the byte order of what follows.
func (r *Reader) readBlock() (typ uint32, body []byte, start int64, err error) {
	start = r.off
	h := r.hdr[:8]
	if err := r.readFull(h); err != nil {
		if err == io.EOF {
			return 0, nil, start, io.EOF
		}
		return 0, nil, start, fmt.Errorf("pcapng block at byte %d: %w", start, unexpected(err))
	}
	typ = r.order.Uint32(h) // the section header type reads the same in both orders
	if typ == blockSHB {
		return typ, nil, start, r.readSHB(start)
	}
	n := r.order.Uint32(h[4:])
	if err := checkBlockLen(n, 12); err != nil {
		return 0, nil, start, blockErr(typ, start, err)
	}
	switch typ {
	case blockIDB, blockPB, blockSPB, blockISB, blockEPB:
		if body, err = r.fill(int(n) - 8); err != nil {
			return 0, nil, start, blockErr(typ, start, err)
		}
		if r.order.Uint32(body[len(body)-4:]) != n {
			return 0, nil, start, malformed(typ, start, "leading length %d, trailing %d", n, r.order.Uint32(body[len(body)-4:]))
		}
		return typ, body[:len(body)-4], start, nil
	}
	if err := r.skip(int(n) - 12); err != nil {
		return 0, nil, start, blockErr(typ, start, err)
	}
	tail := r.hdr[8:12]
	if err := r.readFull(tail); err != nil {
		return 0, nil, start, blockErr(typ, start, unexpected(err))
	}
	if r.order.Uint32(tail) != n {
		return 0, nil, start, malformed(typ, start, "leading length %d, trailing %d", n, r.order.Uint32(tail))
	}
	return typ, nil, start, nil
}

// checkBlockLen checks a block's total length.
func checkBlockLen(n, least uint32) error {
	switch {
	case n < least:
		return fmt.Errorf("length %d below %d: %w", n, least, ErrFormat)
	case n%4 != 0:
		return fmt.Errorf("length %d not a multiple of 4: %w", n, ErrFormat)
	case n > maxBlock:
		return fmt.Errorf("length %d above the %d limit: %w", n, maxBlock, ErrFormat)
	}
	return nil
}

// readSHB reads a section header block whose type and length are in
// r.hdr[:8], and starts its section.
func (r *Reader) readSHB(start int64) error {
	bom := r.hdr[8:12]
	if err := r.readFull(bom); err != nil {
		return blockErr(blockSHB, start, unexpected(err))
	}
	switch {
	case binary.LittleEndian.Uint32(bom) == byteOrderMagic:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(bom) == byteOrderMagic:
		r.order = binary.BigEndian
	default:
		return malformed(blockSHB, start, "byte-order magic %x", bom)
	}
	n := r.order.Uint32(r.hdr[4:8])
	if err := checkBlockLen(n, 28); err != nil {
		return blockErr(blockSHB, start, err)
	}
	body, err := r.fill(int(n) - 12)
	if err != nil {
		return blockErr(blockSHB, start, err)
	}
	if tail := r.order.Uint32(body[len(body)-4:]); tail != n {
		return malformed(blockSHB, start, "leading length %d, trailing %d", n, tail)
	}
	body = body[:len(body)-4]
	if major, minor := r.order.Uint16(body[0:]), r.order.Uint16(body[2:]); major != 1 {
		return malformed(blockSHB, start, "version %d.%d", major, minor)
	}
	r.base, r.app = len(r.ifaces), ""
	opts := r.options(body[12:])
	for opts.next() {
		if opts.code == optShbUserApp {
			r.app = optString(opts.val)
		}
	}
	if opts.err != nil {
		return malformed(blockSHB, start, "%v", opts.err)
	}
	return nil
}

// parseIDB adds the interface an interface description block describes.
func (r *Reader) parseIDB(body []byte, start int64) error {
	if len(body) < 8 {
		return malformed(blockIDB, start, "%d-byte body", len(body))
	}
	ifc := Interface{LinkType: r.order.Uint16(body[0:]), SnapLen: r.order.Uint32(body[4:])}
	res := tsResolution{exp: 6} // microseconds unless if_tsresol says otherwise
	opts := r.options(body[8:])
	for opts.next() {
		switch v := opts.val; opts.code {
		case optIfName:
			ifc.Name = optString(v)
		case optIfDesc:
			ifc.Description = optString(v)
		case optIfTsresol:
			if len(v) != 1 {
				return malformed(blockIDB, start, "if_tsresol of %d bytes", len(v))
			}
			res.binary, res.exp = v[0]&0x80 != 0, v[0]&0x7f
			if res.binary && res.exp > 63 || !res.binary && res.exp > 19 {
				return malformed(blockIDB, start, "if_tsresol %#x out of range", v[0])
			}
		case optIfTsoffset:
			if len(v) != 8 {
				return malformed(blockIDB, start, "if_tsoffset of %d bytes", len(v))
			}
			res.offset = int64(r.order.Uint64(v))
		}
	}
	if opts.err != nil {
		return malformed(blockIDB, start, "%v", opts.err)
	}
	if err := r.addInterface(ifc, res); err != nil {
		return blockErr(blockIDB, start, err)
	}
	return nil
}

// iface maps a block's interface ID to an index into r.ifaces.
func (r *Reader) iface(typ uint32, start int64, id uint32) (int, error) {
	if uint64(id) >= uint64(len(r.ifaces)-r.base) {
		return 0, malformed(typ, start, "interface %d not described in this section", id)
	}
	return r.base + int(id), nil
}

// parsePacket decodes an enhanced or an obsolete packet block.
func (r *Reader) parsePacket(typ uint32, body []byte, start int64, p *Packet) error {
	if len(body) < 20 {
		return malformed(typ, start, "%d-byte body", len(body))
	}
	id := r.order.Uint32(body[0:])
	if typ == blockPB {
		id = uint32(r.order.Uint16(body[0:])) // then 16 bits of drop count
	}
	i, err := r.iface(typ, start, id)
	if err != nil {
		return err
	}
	capLen := r.order.Uint32(body[12:])
	if uint64(capLen) > uint64(len(body)-20) {
		return malformed(typ, start, "%d bytes captured in a %d-byte body", capLen, len(body))
	}
	*p = Packet{
		Timestamp: r.res[i].nanos(r.order.Uint32(body[4:]), r.order.Uint32(body[8:])),
		WireLen:   r.order.Uint32(body[16:]),
		Interface: i,
		Data:      body[20 : 20+capLen],
	}
	// The body's length is a multiple of 4, so the padded data fits.
	opts := r.options(body[20+pad4(int(capLen)):])
	for opts.next() {
		if opts.code == optEpbFlags && len(opts.val) == 4 {
			switch r.order.Uint32(opts.val) & 3 {
			case flagsInbound:
				p.Direction = DirInbound
			case flagsOutbound:
				p.Direction = DirOutbound
			}
		}
	}
	if opts.err != nil {
		return malformed(typ, start, "%v", opts.err)
	}
	return nil
}

// parseSPB decodes a simple packet block: interface 0 of the section, no
// timestamp, captured length implied by the snap length.
func (r *Reader) parseSPB(body []byte, start int64, p *Packet) error {
	if len(body) < 4 {
		return malformed(blockSPB, start, "%d-byte body", len(body))
	}
	i, err := r.iface(blockSPB, start, 0)
	if err != nil {
		return err
	}
	wire := r.order.Uint32(body[0:])
	data := body[4:]
	capLen := uint64(min(uint64(wire), uint64(len(data))))
	if snap := r.ifaces[i].SnapLen; snap != 0 {
		capLen = min(capLen, uint64(snap))
	}
	*p = Packet{WireLen: wire, Interface: i, Data: data[:capLen]}
	return nil
}

// parseISB records an interface statistics block.
func (r *Reader) parseISB(body []byte, start int64) error {
	if len(body) < 12 {
		return malformed(blockISB, start, "%d-byte body", len(body))
	}
	i, err := r.iface(blockISB, start, r.order.Uint32(body[0:]))
	if err != nil {
		return err
	}
	s := InterfaceStats{Timestamp: r.res[i].nanos(r.order.Uint32(body[4:]), r.order.Uint32(body[8:]))}
	opts := r.options(body[12:])
	for opts.next() {
		if len(opts.val) != 8 {
			continue
		}
		switch v := r.order.Uint64(opts.val); opts.code {
		case optIsbStart:
			s.StartTime = r.res[i].nanos(r.order.Uint32(opts.val[0:]), r.order.Uint32(opts.val[4:]))
		case optIsbEnd:
			s.EndTime = r.res[i].nanos(r.order.Uint32(opts.val[0:]), r.order.Uint32(opts.val[4:]))
		case optIsbRecv:
			s.Received = v
		case optIsbDrop:
			s.Dropped = v
		case optIsbAccept:
			s.Accepted = v
		}
	}
	if opts.err != nil {
		return malformed(blockISB, start, "%v", opts.err)
	}
	r.stats[i] = s
	return nil
}

// optionIter walks the options of a block.
type optionIter struct {
	order binary.ByteOrder
	b     []byte
	code  uint16
	val   []byte
	err   error
}

func (r *Reader) options(b []byte) optionIter { return optionIter{order: r.order, b: b} }

// next moves to the next option; it returns false at opt_endofopt, at the
// end of the block or on error.
func (o *optionIter) next() bool {
	if len(o.b) < 4 {
		if len(o.b) != 0 {
			o.err = fmt.Errorf("%d stray bytes after the options", len(o.b))
		}
		return false
	}
	code, n := o.order.Uint16(o.b[0:]), int(o.order.Uint16(o.b[2:]))
	if code == optEnd {
		return false
	}
	if 4+pad4(n) > len(o.b) {
		o.err = fmt.Errorf("option %d of %d bytes overruns the block", code, n)
		return false
	}
	o.code, o.val, o.b = code, o.b[4:4+n], o.b[4+pad4(n):]
	return true
}

// optString decodes a string option, dropping the NUL terminators some
// writers add.
func optString(v []byte) string { return string(bytes.TrimRight(v, "\x00")) }

// tsResolution converts the timestamps of one pcapng interface.
type tsResolution struct {
	binary bool  // units of 2^-exp seconds, else 10^-exp
	exp    uint8 // at most 63 for binary, 19 for decimal
	offset int64 // if_tsoffset, seconds
}

var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// nanos converts a timestamp to Unix nanoseconds. Sub-nanosecond units are
// truncated; times past the year 2262 wrap.
func (t tsResolution) nanos(hi, lo uint32) int64 {
	v := uint64(hi)<<32 | uint64(lo)
	var sec, ns uint64
	if t.binary {
		sec = v >> t.exp
		frac := v & (1<<t.exp - 1)
		h, l := bits.Mul64(frac, 1e9) // frac·10⁹ / 2^exp < 10⁹
		ns = l>>t.exp | h<<(64-t.exp)
	} else {
		sec, ns = v/pow10[t.exp], v%pow10[t.exp]
		if t.exp <= 9 {
			ns *= pow10[9-t.exp]
		} else {
			ns /= pow10[t.exp-9]
		}
	}
	return int64(sec)*1e9 + int64(ns) + t.offset*1e9
}

// blockName names a block type in errors.
func blockName(typ uint32) string {
	switch typ {
	case blockSHB:
		return "section header block"
	case blockIDB:
		return "interface description block"
	case blockPB:
		return "packet block"
	case blockSPB:
		return "simple packet block"
	case blockISB:
		return "interface statistics block"
	case blockEPB:
		return "enhanced packet block"
	}
	return fmt.Sprintf("block of type %#x", typ)
}

// blockErr adds the block's type and position to err.
func blockErr(typ uint32, start int64, err error) error {
	return fmt.Errorf("pcapng %s at byte %d: %w", blockName(typ), start, err)
}

// malformed reports a malformed block.
func malformed(typ uint32, start int64, format string, args ...any) error {
	return blockErr(typ, start, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrFormat))
}
