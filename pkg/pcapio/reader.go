package pcapio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// ErrFormat is wrapped by the Reader's errors about malformed files.
var ErrFormat = errors.New("malformed capture file")

// readBufferSize is the Reader's bufio size.
const readBufferSize = 64 << 10

// maxInterfaces bounds the interfaces a file may describe, over all its
// sections.
const maxInterfaces = 1 << 20

// Reader reads classic pcap and pcapng files. It is not safe for
// concurrent use.
type Reader struct {
	br     *bufio.Reader
	off    int64 // bytes consumed from br
	good   int64 // end of the last complete, valid block or record
	format Format
	order  binary.ByteOrder // of the file (pcap) or of the current section
	nano   bool             // classic pcap with nanosecond timestamps
	ifaces []Interface      // of all sections so far
	res    []tsResolution   // parallel to ifaces
	base   int              // index of the current section's first interface
	stats  map[int]InterfaceStats
	app    string
	buf    []byte // block or record being decoded; Packet.Data aliases it
	hdr    [24]byte
	err    error // sticky
}

// NewReader detects the format and reads the file header: the classic
// pcap header, or the first pcapng section header and the interface
// descriptions right after it.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, readBufferSize), stats: map[int]InterfaceStats{}}
	magic := rd.hdr[:4]
	if err := rd.readFull(magic); err != nil {
		return nil, fmt.Errorf("read file magic: %w", unexpected(err))
	}
	if binary.LittleEndian.Uint32(magic) == blockSHB {
		rd.format = FormatPCAPNG
		if err := rd.startPcapng(); err != nil {
			return nil, err
		}
		return rd, nil
	}
	rd.format = FormatPCAP
	if err := rd.startPcap(magic); err != nil {
		return nil, err
	}
	rd.good = rd.off
	return rd, nil
}

// Offset is the byte offset just past the last complete and valid block
// (pcapng) or record and file header (pcap) read so far: always a block
// boundary. After Next fails on a file cut short or damaged, the file's
// valid prefix ends here, and truncating the file to Offset leaves a file
// that reads cleanly to its end.
func (r *Reader) Offset() int64 { return r.good }

// Format is the file's format.
func (r *Reader) Format() Format { return r.format }

// Application is the shb_userappl of the current pcapng section, "" if
// none or for classic pcap.
func (r *Reader) Application() string { return r.app }

// Interfaces lists the interfaces described so far, in all sections; for
// classic pcap the one the header describes. Packet.Interface indexes it.
// The slice is shared with the Reader: do not modify its elements.
func (r *Reader) Interfaces() []Interface { return r.ifaces[:len(r.ifaces):len(r.ifaces)] }

// Stats returns, per interface index, the last interface statistics block
// read so far.
func (r *Reader) Stats() map[int]InterfaceStats { return maps.Clone(r.stats) }

// Next reads the next packet into p. p.Data aliases a buffer of the
// Reader that the next call overwrites. At the end of the file Next
// returns io.EOF; errors are sticky.
func (r *Reader) Next(p *Packet) error {
	if r.err != nil {
		return r.err
	}
	var err error
	if r.format == FormatPCAP {
		err = r.nextRecord(p)
	} else {
		err = r.nextBlock(p)
	}
	if err != nil {
		r.err = err
		return err
	}
	r.good = r.off
	return nil
}

// readFull reads len(b) bytes; io.EOF means none were left.
func (r *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(r.br, b)
	r.off += int64(n)
	return err
}

// fill reads the next n bytes into r.buf and returns them. A file cut
// short gives io.ErrUnexpectedEOF. The buffer grows in steps as data
// arrives, so that a corrupt length in a short file costs little memory.
func (r *Reader) fill(n int) ([]byte, error) {
	if n <= cap(r.buf) {
		r.buf = r.buf[:n]
		if err := r.readFull(r.buf); err != nil {
			return nil, unexpected(err)
		}
		return r.buf, nil
	}
	r.buf = r.buf[:0]
	for len(r.buf) < n {
		chunk := min(n-len(r.buf), max(len(r.buf), readBufferSize))
		start := len(r.buf)
		r.buf = slices.Grow(r.buf, chunk)[:start+chunk]
		if err := r.readFull(r.buf[start:]); err != nil {
			return nil, unexpected(err)
		}
	}
	return r.buf, nil
}

// skip discards n bytes.
func (r *Reader) skip(n int) error {
	d, err := r.br.Discard(n)
	r.off += int64(d)
	return unexpected(err)
}

// unexpected turns io.EOF into io.ErrUnexpectedEOF, for reads that must
// not end the file.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// addInterface appends an interface of the current file or section.
func (r *Reader) addInterface(ifc Interface, res tsResolution) error {
	if len(r.ifaces) >= maxInterfaces {
		return fmt.Errorf("more than %d interfaces: %w", maxInterfaces, ErrFormat)
	}
	r.ifaces = append(r.ifaces, ifc)
	r.res = append(r.res, res)
	return nil
}
