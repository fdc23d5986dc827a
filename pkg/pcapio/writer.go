package pcapio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	Format      Format
	Application string // pcapng shb_userappl
	Interfaces  []Interface
	BufferSize  int // default 1 MiB
}

// Writer encodes packets into pcapng or pcap. It is not safe for concurrent
// use.
type Writer struct {
	opts    WriterOptions
	out     io.Writer
	buf     []byte
	written int64
	packets uint64
	err     error
}

var le = binary.LittleEndian

// NewWriter writes the file header (pcapng section header and interface
// blocks, or the pcap global header) and returns the writer.
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("no interfaces to describe")
	}
	if opts.Format == FormatPCAP {
		for _, ifc := range opts.Interfaces[1:] {
			if ifc.LinkType != opts.Interfaces[0].LinkType {
				return nil, fmt.Errorf("classic pcap holds one link type, got %d and %d: use pcapng", opts.Interfaces[0].LinkType, ifc.LinkType)
			}
		}
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 1 << 20
	}
	wr := &Writer{opts: opts, buf: make([]byte, 0, opts.BufferSize)}
	if err := wr.StartSection(w); err != nil {
		return nil, err
	}
	return wr, nil
}

// StartSection flushes, switches to out and writes a new header there:
// the start of a new file when rotating.
func (w *Writer) StartSection(out io.Writer) error {
	if w.out != nil {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.out, w.written, w.packets, w.err = out, 0, 0, nil
	if w.opts.Format == FormatPCAP {
		w.pcapHeader()
	} else {
		w.shb()
		for _, ifc := range w.opts.Interfaces {
			w.idb(ifc)
		}
	}
	return w.err
}

// Written is the bytes written in this section so far (buffered included).
func (w *Writer) Written() int64 { return w.written + int64(len(w.buf)) }

// Packets is the packets written in this section.
func (w *Writer) Packets() uint64 { return w.packets }

// Flush writes the buffer out.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.out.Write(w.buf)
	w.written += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write capture data: %w", err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// Close flushes; it does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }

// reserve makes room for n more bytes, flushing if needed.
func (w *Writer) reserve(n int) {
	if len(w.buf)+n > cap(w.buf) {
		_ = w.Flush()
		if n > cap(w.buf) {
			w.buf = make([]byte, 0, n)
		}
	}
}

func pad4(n int) int { return (n + 3) &^ 3 }

func (w *Writer) u16(v uint16) { w.buf = le.AppendUint16(w.buf, v) }
func (w *Writer) u32(v uint32) { w.buf = le.AppendUint32(w.buf, v) }
func (w *Writer) u64(v uint64) { w.buf = le.AppendUint64(w.buf, v) }

func (w *Writer) padTo4() {
	for len(w.buf)%4 != 0 {
		w.buf = append(w.buf, 0)
	}
}

func (w *Writer) optString(code uint16, s string) {
	if s == "" {
		return
	}
	w.u16(code)
	w.u16(uint16(len(s)))
	w.buf = append(w.buf, s...)
	w.padTo4()
}

func optStringLen(s string) int {
	if s == "" {
		return 0
	}
	return 4 + pad4(len(s))
}

// Blocks are appended to buf, which is flushed only between blocks, so a
// block's start is at a known index; buf is 4-aligned relative to block
// starts because every block length is a multiple of 4.
func (w *Writer) shb() {
	n := 28 + optStringLen(w.opts.Application) + 4
	w.reserve(n)
	w.u32(blockSHB)
	w.u32(uint32(n))
	w.u32(byteOrderMagic)
	w.u16(1)
	w.u16(0)
	w.u64(^uint64(0)) // section length unknown
	w.optString(optShbUserApp, w.opts.Application)
	w.u32(0) // opt_endofopt
	w.u32(uint32(n))
}

func (w *Writer) idb(ifc Interface) {
	n := 20 + optStringLen(ifc.Name) + optStringLen(ifc.Description) + 8 + 4
	w.reserve(n)
	w.u32(blockIDB)
	w.u32(uint32(n))
	w.u16(ifc.LinkType)
	w.u16(0)
	w.u32(ifc.SnapLen)
	w.optString(optIfName, ifc.Name)
	w.optString(optIfDesc, ifc.Description)
	w.u16(optIfTsresol)
	w.u16(1)
	w.buf = append(w.buf, 9, 0, 0, 0) // 10^-9: nanoseconds
	w.u32(0)
	w.u32(uint32(n))
}

func (w *Writer) pcapHeader() {
	var snap uint32
	for _, ifc := range w.opts.Interfaces {
		snap = max(snap, ifc.SnapLen)
	}
	w.reserve(24)
	w.u32(magicPcapNano)
	w.u16(2)
	w.u16(4)
	w.u32(0)
	w.u32(0)
	w.u32(snap)
	w.u32(uint32(w.opts.Interfaces[0].LinkType))
}

// WritePacket appends one packet. It does not allocate.
func (w *Writer) WritePacket(p *Packet) error {
	if w.err != nil {
		return w.err
	}
	if p.Interface < 0 || p.Interface >= len(w.opts.Interfaces) {
		return fmt.Errorf("packet for interface %d, writer has %d", p.Interface, len(w.opts.Interfaces))
	}
	capLen := len(p.Data)
	wire := max(p.WireLen, uint32(capLen))
	ts := uint64(p.Timestamp)
	if w.opts.Format == FormatPCAP {
		if w.reserve(16 + capLen); w.err != nil {
			return w.err
		}
		w.u32(uint32(ts / 1e9))
		w.u32(uint32(ts % 1e9))
		w.u32(uint32(capLen))
		w.u32(wire)
		w.buf = append(w.buf, p.Data...)
		w.packets++
		return nil
	}
	opts := 0
	if p.Direction != DirUnknown {
		opts = 8 + 4
	}
	n := 28 + pad4(capLen) + opts + 4
	if w.reserve(n); w.err != nil {
		return w.err
	}
	w.u32(blockEPB)
	w.u32(uint32(n))
	w.u32(uint32(p.Interface))
	w.u32(uint32(ts >> 32))
	w.u32(uint32(ts))
	w.u32(uint32(capLen))
	w.u32(wire)
	w.buf = append(w.buf, p.Data...)
	w.padTo4()
	if opts != 0 {
		w.u16(optEpbFlags)
		w.u16(4)
		w.u32(uint32(p.Direction)) // bits 0-1: 01 inbound, 10 outbound
		w.u32(0)
	}
	w.u32(uint32(n))
	w.packets++
	return nil
}

// WriteInterfaceStats writes a pcapng interface statistics block; for
// classic pcap it does nothing.
func (w *Writer) WriteInterfaceStats(iface int, s InterfaceStats) error {
	if w.err != nil {
		return w.err
	}
	if w.opts.Format == FormatPCAP {
		return nil
	}
	if iface < 0 || iface >= len(w.opts.Interfaces) {
		return fmt.Errorf("statistics for interface %d, writer has %d", iface, len(w.opts.Interfaces))
	}
	n := 20 + 3*12 + 4 + 4
	w.reserve(n)
	ts := uint64(s.Timestamp)
	w.u32(blockISB)
	w.u32(uint32(n))
	w.u32(uint32(iface))
	w.u32(uint32(ts >> 32))
	w.u32(uint32(ts))
	for _, o := range []struct {
		code uint16
		v    uint64
	}{{optIsbRecv, s.Received}, {optIsbDrop, s.Dropped}, {optIsbAccept, s.Accepted}} {
		w.u16(o.code)
		w.u16(8)
		w.u64(o.v)
	}
	w.u32(0)
	w.u32(uint32(n))
	return nil
}
