package pcapio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxBlock bounds a block or record so that corrupt lengths cannot make the
// reader allocate without limit.
const maxBlock = 16 << 20

// ErrFormat is wrapped by errors about malformed files.
var ErrFormat = errors.New("malformed capture file")

type readerIface struct {
	Interface
	// ts units per second and whether the unit is a power of 2
	tsDiv   uint64
	tsShift bool
	shift   uint
}

// Reader reads pcap and pcapng files.
type Reader struct {
	r      *bufio.Reader
	format Format
	order  binary.ByteOrder
	ifaces []readerIface
	stats  map[int]InterfaceStats
	app    string
	nano   bool // classic pcap
	buf    []byte
	hdr    [28]byte
	// interface index offset of the current section, so that indexes stay
	// unique across sections
	base int
}

// NewReader reads the file header.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 1<<20), stats: map[int]InterfaceStats{}}
	var magic [4]byte
	if _, err := io.ReadFull(rd.r, magic[:]); err != nil {
		return nil, fmt.Errorf("read file magic: %w", unexpected(err))
	}
	switch {
	case binary.LittleEndian.Uint32(magic[:]) == blockSHB:
		rd.format = FormatPCAPNG
		if err := rd.readSHB(); err != nil {
			return nil, err
		}
		return rd, nil
	}
	rd.format = FormatPCAP
	switch {
	case binary.LittleEndian.Uint32(magic[:]) == magicPcapMicro:
		rd.order = binary.LittleEndian
	case binary.BigEndian.Uint32(magic[:]) == magicPcapMicro:
		rd.order = binary.BigEndian
	case binary.LittleEndian.Uint32(magic[:]) == magicPcapNano:
		rd.order, rd.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(magic[:]) == magicPcapNano:
		rd.order, rd.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: unknown magic %x", ErrFormat, magic)
	}
	var h [20]byte
	if _, err := io.ReadFull(rd.r, h[:]); err != nil {
		return nil, fmt.Errorf("read pcap header: %w", unexpected(err))
	}
	rd.ifaces = []readerIface{{Interface: Interface{LinkType: uint16(rd.order.Uint32(h[16:])), SnapLen: rd.order.Uint32(h[12:])}}}
	return rd, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Format is the file's format.
func (r *Reader) Format() Format { return r.format }

// Application is the pcapng shb_userappl of the latest section.
func (r *Reader) Application() string { return r.app }

// Interfaces lists the interfaces seen so far.
func (r *Reader) Interfaces() []Interface {
	out := make([]Interface, len(r.ifaces))
	for i, ifc := range r.ifaces {
		out[i] = ifc.Interface
	}
	return out
}

// Stats is the last interface statistics block seen per interface.
func (r *Reader) Stats() map[int]InterfaceStats { return r.stats }

// Next reads the next packet into p. p.Data aliases an internal buffer
// valid until the next call. It returns io.EOF at the end of the file.
func (r *Reader) Next(p *Packet) error {
	if r.format == FormatPCAP {
		return r.nextPcap(p)
	}
	for {
		typ, body, err := r.block()
		if err != nil {
			return err
		}
		switch typ {
		case blockEPB, blockPB:
			return r.packetBlock(typ, body, p)
		case blockSPB:
			if len(body) < 4 || len(r.ifaces) <= r.base {
				return fmt.Errorf("%w: simple packet block", ErrFormat)
			}
			wire := r.order.Uint32(body)
			data := body[4:]
			ifc := r.ifaces[r.base]
			if n := min(uint32(len(data)), wire); ifc.SnapLen > 0 {
				data = data[:min(n, ifc.SnapLen)]
			} else {
				data = data[:n]
			}
			*p = Packet{WireLen: wire, Interface: r.base, Data: data}
			return nil
		case blockIDB:
			if err := r.parseIDB(body); err != nil {
				return err
			}
		case blockISB:
			r.parseISB(body)
		case blockSHB:
			if err := r.parseSHB(body); err != nil {
				return err
			}
		}
	}
}

func (r *Reader) nextPcap(p *Packet) error {
	if _, err := io.ReadFull(r.r, r.hdr[:16]); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("read record header: %w", unexpected(err))
	}
	sec := uint64(r.order.Uint32(r.hdr[0:]))
	frac := uint64(r.order.Uint32(r.hdr[4:]))
	capLen := r.order.Uint32(r.hdr[8:])
	if capLen > maxBlock {
		return fmt.Errorf("%w: record of %d bytes", ErrFormat, capLen)
	}
	if err := r.fill(int(capLen)); err != nil {
		return fmt.Errorf("read record: %w", err)
	}
	if !r.nano {
		frac *= 1000
	}
	*p = Packet{Timestamp: int64(sec*1e9 + frac), WireLen: r.order.Uint32(r.hdr[12:]), Data: r.buf}
	return nil
}

func (r *Reader) fill(n int) error {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return unexpected(err)
	}
	return nil
}

// block reads one pcapng block and returns its type and body (without the
// type, length and trailing length).
func (r *Reader) block() (uint32, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:8]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("read block header: %w", unexpected(err))
	}
	typ := r.order.Uint32(r.hdr[0:])
	if typ == blockSHB {
		// The byte order may change with a new section.
		if err := r.readSHBAfterType(); err != nil {
			return 0, nil, err
		}
		return 0, nil, nil
	}
	n := r.order.Uint32(r.hdr[4:])
	if n < 12 || n%4 != 0 || n > maxBlock {
		return 0, nil, fmt.Errorf("%w: block length %d", ErrFormat, n)
	}
	if err := r.fill(int(n) - 8); err != nil {
		return 0, nil, fmt.Errorf("read block: %w", err)
	}
	if r.order.Uint32(r.buf[len(r.buf)-4:]) != n {
		return 0, nil, fmt.Errorf("%w: block lengths disagree", ErrFormat)
	}
	return typ, r.buf[:len(r.buf)-4], nil
}

// readSHB reads a section header whose type was already consumed.
func (r *Reader) readSHB() error {
	if _, err := io.ReadFull(r.r, r.hdr[4:8]); err != nil {
		return fmt.Errorf("read section header: %w", unexpected(err))
	}
	return r.readSHBAfterType()
}

func (r *Reader) readSHBAfterType() error {
	var bom [4]byte
	if _, err := io.ReadFull(r.r, bom[:]); err != nil {
		return fmt.Errorf("read section header: %w", unexpected(err))
	}
	switch {
	case binary.LittleEndian.Uint32(bom[:]) == byteOrderMagic:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(bom[:]) == byteOrderMagic:
		r.order = binary.BigEndian
	default:
		return fmt.Errorf("%w: bad byte-order magic %x", ErrFormat, bom)
	}
	n := r.order.Uint32(r.hdr[4:8])
	if n < 28 || n%4 != 0 || n > maxBlock {
		return fmt.Errorf("%w: section header length %d", ErrFormat, n)
	}
	if err := r.fill(int(n) - 12); err != nil {
		return fmt.Errorf("read section header: %w", err)
	}
	if r.order.Uint32(r.buf[len(r.buf)-4:]) != n {
		return fmt.Errorf("%w: section header lengths disagree", ErrFormat)
	}
	return r.parseSHB(r.buf[:len(r.buf)-4])
}

// parseSHB handles the body after the byte-order magic.
func (r *Reader) parseSHB(body []byte) error {
	if len(body) < 12 {
		return fmt.Errorf("%w: short section header", ErrFormat)
	}
	if major := r.order.Uint16(body); major != 1 {
		return fmt.Errorf("%w: pcapng version %d", ErrFormat, major)
	}
	r.base = len(r.ifaces)
	r.app = ""
	return r.options(body[12:], func(code uint16, v []byte) {
		if code == optShbUserApp {
			r.app = string(v)
		}
	})
}

func (r *Reader) options(b []byte, fn func(code uint16, v []byte)) error {
	for len(b) >= 4 {
		code, n := r.order.Uint16(b), int(r.order.Uint16(b[2:]))
		if code == optEnd {
			return nil
		}
		if 4+pad4(n) > len(b) {
			return fmt.Errorf("%w: option %d overruns its block", ErrFormat, code)
		}
		fn(code, b[4:4+n])
		b = b[4+pad4(n):]
	}
	return nil
}

func (r *Reader) parseIDB(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("%w: short interface block", ErrFormat)
	}
	ifc := readerIface{Interface: Interface{LinkType: r.order.Uint16(body), SnapLen: r.order.Uint32(body[4:])}, tsDiv: 1e6}
	err := r.options(body[8:], func(code uint16, v []byte) {
		switch code {
		case optIfName:
			ifc.Name = string(v)
		case optIfDesc:
			ifc.Description = string(v)
		case optIfTsresol:
			if len(v) < 1 {
				return
			}
			if v[0]&0x80 != 0 {
				ifc.tsShift, ifc.shift = true, uint(v[0]&0x7f)
			} else {
				ifc.tsDiv = 1
				for range v[0] {
					ifc.tsDiv *= 10
				}
			}
		}
	})
	if err != nil {
		return err
	}
	if len(r.ifaces) >= 1<<16 {
		return fmt.Errorf("%w: too many interfaces", ErrFormat)
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

func (r *Reader) ifaceOf(id uint32) (int, error) {
	i := r.base + int(id)
	if int(id) >= len(r.ifaces)-r.base {
		return 0, fmt.Errorf("%w: block for undefined interface %d", ErrFormat, id)
	}
	return i, nil
}

func (r *Reader) timestamp(i int, hi, lo uint32) int64 {
	t := uint64(hi)<<32 | uint64(lo)
	ifc := r.ifaces[i]
	if ifc.tsShift {
		sec := t >> ifc.shift
		frac := t & (1<<ifc.shift - 1)
		return int64(sec*1e9 + frac*1e9>>ifc.shift)
	}
	if ifc.tsDiv == 0 {
		return int64(t)
	}
	sec, frac := t/ifc.tsDiv, t%ifc.tsDiv
	if ifc.tsDiv >= 1e9 {
		return int64(sec*1e9 + frac/(ifc.tsDiv/1e9))
	}
	return int64(sec*1e9 + frac*(1e9/ifc.tsDiv))
}

func (r *Reader) packetBlock(typ uint32, body []byte, p *Packet) error {
	if len(body) < 20 {
		return fmt.Errorf("%w: short packet block", ErrFormat)
	}
	var id uint32
	if typ == blockPB {
		id = uint32(r.order.Uint16(body))
	} else {
		id = r.order.Uint32(body)
	}
	i, err := r.ifaceOf(id)
	if err != nil {
		return err
	}
	capLen := r.order.Uint32(body[12:])
	if uint64(capLen) > uint64(len(body)-20) {
		return fmt.Errorf("%w: packet of %d bytes in a %d-byte block", ErrFormat, capLen, len(body))
	}
	*p = Packet{
		Timestamp: r.timestamp(i, r.order.Uint32(body[4:]), r.order.Uint32(body[8:])),
		WireLen:   r.order.Uint32(body[16:]),
		Interface: i,
		Data:      body[20 : 20+capLen],
	}
	if typ == blockEPB {
		err := r.options(body[20+pad4(int(capLen)):], func(code uint16, v []byte) {
			if code == optEpbFlags && len(v) == 4 {
				p.Direction = Direction(r.order.Uint32(v) & 3)
				if p.Direction == 3 {
					p.Direction = DirUnknown
				}
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) parseISB(body []byte) {
	if len(body) < 12 {
		return
	}
	i, err := r.ifaceOf(r.order.Uint32(body))
	if err != nil {
		return
	}
	s := InterfaceStats{Timestamp: r.timestamp(i, r.order.Uint32(body[4:]), r.order.Uint32(body[8:]))}
	_ = r.options(body[12:], func(code uint16, v []byte) {
		if len(v) != 8 {
			return
		}
		switch code {
		case optIsbRecv:
			s.Received = r.order.Uint64(v)
		case optIsbDrop:
			s.Dropped = r.order.Uint64(v)
		case optIsbAccept:
			s.Accepted = r.order.Uint64(v)
		}
	})
	r.stats[i] = s
}
