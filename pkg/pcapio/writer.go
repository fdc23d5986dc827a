package pcapio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// DefaultBufferSize is the Writer's buffer size when WriterOptions leaves
// it 0.
const DefaultBufferSize = 1 << 20

// WriterOptions configure a Writer.
type WriterOptions struct {
	Format      Format
	Application string      // pcapng shb_userappl; unused for pcap
	Interfaces  []Interface // at least one; Packet.Interface indexes them
	BufferSize  int         // bytes buffered before writing out; default 1 MiB
}

// Writer encodes packets into pcapng or classic pcap. It is not safe for
// concurrent use.
type Writer struct {
	format  Format
	app     string
	ifaces  []Interface
	out     io.Writer
	buf     []byte
	written int64 // bytes handed to out in this section
	packets uint64
	err     error // sticky error from out
}

// le is the byte order of everything the Writer produces.
var le = binary.LittleEndian

// NewWriter checks opts and writes the file header to w: a pcapng section
// header and one interface description per interface, or the classic pcap
// header. The header stays buffered until the first Flush.
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("new capture writer: no interfaces")
	}
	switch opts.Format {
	case FormatPCAPNG:
		if len(opts.Application) > math.MaxUint16 {
			return nil, fmt.Errorf("new capture writer: application name of %d bytes is too long", len(opts.Application))
		}
		for i, ifc := range opts.Interfaces {
			if len(ifc.Name) > math.MaxUint16 || len(ifc.Description) > math.MaxUint16 {
				return nil, fmt.Errorf("new capture writer: interface %d: name or description too long", i)
			}
		}
	case FormatPCAP:
		for i, ifc := range opts.Interfaces[1:] {
			if ifc.LinkType != opts.Interfaces[0].LinkType {
				return nil, fmt.Errorf("new capture writer: classic pcap holds one link type, interface 0 has %d and interface %d has %d: use pcapng",
					opts.Interfaces[0].LinkType, i+1, ifc.LinkType)
			}
		}
	default:
		return nil, fmt.Errorf("new capture writer: unknown format %v", opts.Format)
	}
	size := opts.BufferSize
	if size <= 0 {
		size = DefaultBufferSize
	}
	wr := &Writer{
		format: opts.Format,
		app:    opts.Application,
		ifaces: append([]Interface(nil), opts.Interfaces...),
		buf:    make([]byte, 0, size),
	}
	if err := wr.StartSection(w); err != nil {
		return nil, err
	}
	return wr, nil
}

// StartSection flushes the current section and begins a new one on out: a
// complete file header, so that out holds a file of its own. This is how
// to rotate files. If the previous output had failed, its buffered data
// is dropped and the error cleared.
func (w *Writer) StartSection(out io.Writer) error {
	if out == nil {
		return errors.New("start capture section: nil io.Writer")
	}
	if w.out != nil && w.err == nil {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.out, w.written, w.packets, w.err = out, 0, 0, nil
	w.buf = w.buf[:0]
	if w.format == FormatPCAP {
		return w.writePcapHeader()
	}
	if err := w.writeSHB(); err != nil {
		return err
	}
	for _, ifc := range w.ifaces {
		if err := w.writeIDB(ifc); err != nil {
			return err
		}
	}
	return nil
}

// WritePacket appends one packet to the section. It does not allocate.
func (w *Writer) WritePacket(p *Packet) error {
	if w.err != nil {
		return w.err
	}
	if p.Interface < 0 || p.Interface >= len(w.ifaces) {
		return fmt.Errorf("write packet: interface %d out of range, writer has %d", p.Interface, len(w.ifaces))
	}
	if p.Timestamp < 0 {
		return fmt.Errorf("write packet: negative timestamp %d", p.Timestamp)
	}
	data := p.Data
	if snap := w.ifaces[p.Interface].SnapLen; snap != 0 && uint64(len(data)) > uint64(snap) {
		data = data[:snap]
	}
	if len(data) > maxPacket {
		return fmt.Errorf("write packet: %d bytes captured, at most %d fit a block", len(data), maxPacket)
	}
	wire := p.WireLen
	if uint64(len(p.Data)) > uint64(wire) {
		wire = uint32(min(len(p.Data), math.MaxUint32))
	}
	var err error
	if w.format == FormatPCAP {
		err = w.writeRecord(p.Timestamp, data, wire)
	} else {
		err = w.writeEPB(p, data, wire)
	}
	if err != nil {
		return err
	}
	w.packets++
	return nil
}

// WriteInterfaceStats appends a pcapng interface statistics block for
// interface iface. For classic pcap, which has no such thing, it does
// nothing.
func (w *Writer) WriteInterfaceStats(iface int, s InterfaceStats) error {
	if w.err != nil {
		return w.err
	}
	if iface < 0 || iface >= len(w.ifaces) {
		return fmt.Errorf("write interface statistics: interface %d out of range, writer has %d", iface, len(w.ifaces))
	}
	if s.Timestamp < 0 || s.StartTime < 0 || s.EndTime < 0 {
		return fmt.Errorf("write interface statistics: negative timestamp in %+v", s)
	}
	if w.format == FormatPCAP {
		return nil
	}
	return w.writeISB(iface, s)
}

// Flush writes the buffered data to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.out.Write(w.buf)
	if err == nil && n != len(w.buf) {
		err = io.ErrShortWrite
	}
	w.written += int64(max(0, min(n, len(w.buf))))
	if err != nil {
		w.err = fmt.Errorf("write capture data: %w", err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// Close flushes. It does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }

// Written is the number of bytes of this section so far, buffered ones
// included: the size the output file will have after Flush.
func (w *Writer) Written() int64 { return w.written + int64(len(w.buf)) }

// Buffered is the number of bytes encoded but not yet handed to the
// underlying writer. The buffer only ever holds whole blocks (records for
// pcap), so every Flush hands over a block-aligned piece of the file, and
// a Flush is due before a block that would not fit the BufferSize.
func (w *Writer) Buffered() int { return len(w.buf) }

// Packets is the number of packets written in this section.
func (w *Writer) Packets() uint64 { return w.packets }

// maxPacket is the most captured bytes a packet may have: the largest
// pcapng block (an enhanced packet block with flags) must fit maxBlock.
const maxPacket = maxBlock - 64

// grow extends the buffer by n bytes, flushing first if they do not fit,
// and returns the new n bytes. Their content is stale: callers overwrite
// every byte.
func (w *Writer) grow(n int) ([]byte, error) {
	if len(w.buf)+n > cap(w.buf) {
		if err := w.Flush(); err != nil {
			return nil, err
		}
		if n > cap(w.buf) {
			w.buf = make([]byte, 0, n)
		}
	}
	off := len(w.buf)
	w.buf = w.buf[:off+n]
	return w.buf[off:], nil
}
