package pcapio

import (
	"encoding/binary"
	"fmt"
	"io"
)

// startPcap reads the classic pcap header after its magic.
func (r *Reader) startPcap(magic []byte) error {
	switch {
	case binary.LittleEndian.Uint32(magic) == magicPcapMicro:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(magic) == magicPcapMicro:
		r.order = binary.BigEndian
	case binary.LittleEndian.Uint32(magic) == magicPcapNano:
		r.order, r.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(magic) == magicPcapNano:
		r.order, r.nano = binary.BigEndian, true
	default:
		return fmt.Errorf("unknown file magic %x, neither pcap nor pcapng: %w", magic, ErrFormat)
	}
	h := r.hdr[4:24]
	if err := r.readFull(h); err != nil {
		return fmt.Errorf("read pcap header: %w", unexpected(err))
	}
	if major := r.order.Uint16(h[0:]); major != 2 {
		return fmt.Errorf("pcap version %d.%d: %w", major, r.order.Uint16(h[2:]), ErrFormat)
	}
	// The link type's upper bits may carry FCS information; LINKTYPE_*
	// values fit 16 bits.
	ifc := Interface{SnapLen: r.order.Uint32(h[12:]), LinkType: uint16(r.order.Uint32(h[16:]))}
	return r.addInterface(ifc, tsResolution{})
}

// nextRecord reads one classic pcap record.
func (r *Reader) nextRecord(p *Packet) error {
	h := r.hdr[:16]
	start := r.off
	if err := r.readFull(h); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("pcap record at byte %d: %w", start, unexpected(err))
	}
	sec := int64(r.order.Uint32(h[0:]))
	frac := int64(r.order.Uint32(h[4:]))
	capLen := r.order.Uint32(h[8:])
	if capLen > maxBlock {
		return fmt.Errorf("pcap record at byte %d: %d bytes captured, limit %d: %w", start, capLen, maxBlock, ErrFormat)
	}
	data, err := r.fill(int(capLen))
	if err != nil {
		return fmt.Errorf("pcap record at byte %d: %w", start, err)
	}
	if !r.nano {
		frac *= 1000
	}
	*p = Packet{Timestamp: sec*1e9 + frac, WireLen: r.order.Uint32(h[12:]), Data: data}
	return nil
}
