package pcapio

import "fmt"

// Sizes of the fixed parts of the blocks we write, trailing length
// included.
const (
	shbSize  = 24 + 4 + 4 // type, length, byte-order magic, version, section length; opt_endofopt
	idbSize  = 16 + 8 + 4 + 4
	epbSize  = 28 + 4
	epbFlags = 8 + 4 // epb_flags option and opt_endofopt
	isbSize  = 20 + 3*12 + 4 + 4
	isbTime  = 12 // isb_starttime or isb_endtime
)

// optStringSize is the size of a string option, 0 if s is empty.
func optStringSize(s string) int {
	if s == "" {
		return 0
	}
	return 4 + pad4(len(s))
}

// putOptString encodes a string option into b and returns the rest of b.
func putOptString(b []byte, code uint16, s string) []byte {
	if s == "" {
		return b
	}
	le.PutUint16(b[0:], code)
	le.PutUint16(b[2:], uint16(len(s)))
	n := copy(b[4:], s)
	clear(b[4+n : 4+pad4(n)])
	return b[4+pad4(n):]
}

// writeSHB buffers a section header block with an unknown section length.
func (w *Writer) writeSHB() error {
	n := shbSize + optStringSize(w.app)
	b, err := w.grow(n)
	if err != nil {
		return err
	}
	le.PutUint32(b[0:], blockSHB)
	le.PutUint32(b[4:], uint32(n))
	le.PutUint32(b[8:], byteOrderMagic)
	le.PutUint16(b[12:], 1) // version 1.0
	le.PutUint16(b[14:], 0)
	le.PutUint64(b[16:], ^uint64(0)) // section length: -1, not given
	o := putOptString(b[24:], optShbUserApp, w.app)
	le.PutUint32(o[0:], optEnd)
	le.PutUint32(o[4:], uint32(n))
	return nil
}

// writeIDB buffers an interface description block with nanosecond
// timestamps.
func (w *Writer) writeIDB(ifc Interface) error {
	n := idbSize + optStringSize(ifc.Name) + optStringSize(ifc.Description)
	b, err := w.grow(n)
	if err != nil {
		return err
	}
	le.PutUint32(b[0:], blockIDB)
	le.PutUint32(b[4:], uint32(n))
	le.PutUint16(b[8:], ifc.LinkType)
	le.PutUint16(b[10:], 0) // reserved
	le.PutUint32(b[12:], ifc.SnapLen)
	o := putOptString(b[16:], optIfName, ifc.Name)
	o = putOptString(o, optIfDesc, ifc.Description)
	le.PutUint16(o[0:], optIfTsresol)
	le.PutUint16(o[2:], 1)
	le.PutUint32(o[4:], 9) // 10^-9 s, then 3 bytes of padding
	le.PutUint32(o[8:], optEnd)
	le.PutUint32(o[12:], uint32(n))
	return nil
}

// writeEPB buffers an enhanced packet block, with epb_flags when the
// direction is known.
func (w *Writer) writeEPB(p *Packet, data []byte, wire uint32) error {
	var flags uint32
	switch p.Direction {
	case DirUnknown:
	case DirInbound:
		flags = flagsInbound
	case DirOutbound:
		flags = flagsOutbound
	default:
		return fmt.Errorf("write packet: invalid direction %d", p.Direction)
	}
	padded := pad4(len(data))
	n := epbSize + padded
	if flags != 0 {
		n += epbFlags
	}
	b, err := w.grow(n)
	if err != nil {
		return err
	}
	ts := uint64(p.Timestamp)
	le.PutUint32(b[0:], blockEPB)
	le.PutUint32(b[4:], uint32(n))
	le.PutUint32(b[8:], uint32(p.Interface))
	le.PutUint32(b[12:], uint32(ts>>32))
	le.PutUint32(b[16:], uint32(ts))
	le.PutUint32(b[20:], uint32(len(data)))
	le.PutUint32(b[24:], wire)
	if padded != len(data) {
		le.PutUint32(b[24+padded:], 0) // padding; data overwrites the rest
	}
	copy(b[28:], data)
	o := b[28+padded:]
	if flags != 0 {
		le.PutUint16(o[0:], optEpbFlags)
		le.PutUint16(o[2:], 4)
		le.PutUint32(o[4:], flags)
		le.PutUint32(o[8:], optEnd)
		o = o[epbFlags:]
	}
	le.PutUint32(o, uint32(n))
	return nil
}

// writeISB buffers an interface statistics block, with isb_starttime and
// isb_endtime when they are set.
func (w *Writer) writeISB(iface int, s InterfaceStats) error {
	n := isbSize
	if s.StartTime != 0 {
		n += isbTime
	}
	if s.EndTime != 0 {
		n += isbTime
	}
	b, err := w.grow(n)
	if err != nil {
		return err
	}
	ts := uint64(s.Timestamp)
	le.PutUint32(b[0:], blockISB)
	le.PutUint32(b[4:], uint32(n))
	le.PutUint32(b[8:], uint32(iface))
	le.PutUint32(b[12:], uint32(ts>>32))
	le.PutUint32(b[16:], uint32(ts))
	o := b[20:]
	for _, c := range [...]struct {
		code uint16
		v    int64
	}{{optIsbStart, s.StartTime}, {optIsbEnd, s.EndTime}} {
		if c.v == 0 {
			continue
		}
		// A timestamp option: high then low 32 bits, in if_tsresol units.
		le.PutUint16(o[0:], c.code)
		le.PutUint16(o[2:], 8)
		le.PutUint32(o[4:], uint32(uint64(c.v)>>32))
		le.PutUint32(o[8:], uint32(c.v))
		o = o[12:]
	}
	for _, c := range [...]struct {
		code uint16
		v    uint64
	}{{optIsbRecv, s.Received}, {optIsbDrop, s.Dropped}, {optIsbAccept, s.Accepted}} {
		le.PutUint16(o[0:], c.code)
		le.PutUint16(o[2:], 8)
		le.PutUint64(o[4:], c.v)
		o = o[12:]
	}
	le.PutUint32(o[0:], optEnd)
	le.PutUint32(o[4:], uint32(n))
	return nil
}
