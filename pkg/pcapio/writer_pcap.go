package pcapio

import (
	"fmt"
	"math"
)

// maxPcapTimestamp is the last nanosecond a classic pcap record can hold:
// seconds are an unsigned 32-bit field.
const maxPcapTimestamp = (math.MaxUint32+1)*1e9 - 1

// writePcapHeader buffers the 24-byte classic pcap global header.
func (w *Writer) writePcapHeader() error {
	var snap uint32
	for _, ifc := range w.ifaces {
		snap = max(snap, ifc.SnapLen)
	}
	b, err := w.grow(24)
	if err != nil {
		return err
	}
	le.PutUint32(b[0:], magicPcapNano)
	le.PutUint16(b[4:], 2) // version 2.4
	le.PutUint16(b[6:], 4)
	le.PutUint32(b[8:], 0)  // thiszone
	le.PutUint32(b[12:], 0) // sigfigs
	le.PutUint32(b[16:], snap)
	le.PutUint32(b[20:], uint32(w.ifaces[0].LinkType))
	return nil
}

// writeRecord buffers one classic pcap record.
func (w *Writer) writeRecord(ts int64, data []byte, wire uint32) error {
	if ts > maxPcapTimestamp {
		return fmt.Errorf("write packet: timestamp %d beyond classic pcap's year 2106", ts)
	}
	b, err := w.grow(16 + len(data))
	if err != nil {
		return err
	}
	le.PutUint32(b[0:], uint32(ts/1e9))
	le.PutUint32(b[4:], uint32(ts%1e9))
	le.PutUint32(b[8:], uint32(len(data)))
	le.PutUint32(b[12:], wire)
	copy(b[16:], data)
	return nil
}
