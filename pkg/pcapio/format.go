package pcapio

import "fmt"

// Format is a capture file format.
type Format int

const (
	FormatPCAPNG Format = iota
	FormatPCAP
)

// ParseFormat parses "pcapng" or "pcap".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "pcapng", "":
		return FormatPCAPNG, nil
	case "pcap":
		return FormatPCAP, nil
	}
	return 0, fmt.Errorf("unknown format %q: use pcapng or pcap", s)
}

func (f Format) String() string {
	if f == FormatPCAP {
		return "pcap"
	}
	return "pcapng"
}

// Direction of a packet relative to the interface.
type Direction uint8

const (
	DirUnknown Direction = iota
	DirInbound
	DirOutbound
)

// Interface describes one capture interface.
type Interface struct {
	Name        string
	Description string
	LinkType    uint16
	SnapLen     uint32
}

// Packet is one captured frame.
type Packet struct {
	Timestamp int64  // Unix nanoseconds
	WireLen   uint32 // original length
	Interface int    // index into the interface list
	Direction Direction
	Data      []byte // captured bytes
}

// InterfaceStats are pcapng interface statistics.
type InterfaceStats struct {
	Timestamp int64 // Unix nanoseconds
	Received  uint64
	Dropped   uint64
	Accepted  uint64
}

// pcapng block types and option codes.
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 1
	blockPB  = 2
	blockSPB = 3
	blockISB = 5
	blockEPB = 6

	byteOrderMagic = 0x1a2b3c4d

	optEnd        = 0
	optShbUserApp = 4
	optIfName     = 2
	optIfDesc     = 3
	optIfTsresol  = 9
	optEpbFlags   = 2
	optIsbRecv    = 4
	optIsbDrop    = 5
	optIsbAccept  = 6

	magicPcapMicro = 0xa1b2c3d4
	magicPcapNano  = 0xa1b23c4d
)
