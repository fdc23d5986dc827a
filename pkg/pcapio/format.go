package pcapio

import "fmt"

// Format is a capture file format.
type Format int

const (
	// FormatPCAPNG is pcapng: several interfaces, directions, statistics.
	FormatPCAPNG Format = iota
	// FormatPCAP is classic pcap with nanosecond timestamps.
	FormatPCAP
)

// ParseFormat parses "pcapng" or "pcap". The empty string is pcapng, the
// default.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "pcapng", "":
		return FormatPCAPNG, nil
	case "pcap":
		return FormatPCAP, nil
	}
	return 0, fmt.Errorf("unknown capture format %q: want pcapng or pcap", s)
}

// String returns "pcapng" or "pcap", as ParseFormat accepts.
func (f Format) String() string {
	switch f {
	case FormatPCAPNG:
		return "pcapng"
	case FormatPCAP:
		return "pcap"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Wire constants of both formats.
const (
	// Classic pcap magic numbers.
	magicPcapMicro = 0xa1b2c3d4
	magicPcapNano  = 0xa1b23c4d

	// pcapng block types.
	blockSHB = 0x0a0d0d0a
	blockIDB = 1
	blockPB  = 2 // obsolete packet block
	blockSPB = 3
	blockISB = 5
	blockEPB = 6

	byteOrderMagic = 0x1a2b3c4d

	// pcapng option codes; each block type has its own code space.
	optEnd        = 0
	optShbUserApp = 4
	optIfName     = 2
	optIfDesc     = 3
	optIfTsresol  = 9
	optIfTsoffset = 14
	optEpbFlags   = 2 // also pack_flags of the obsolete packet block
	optIsbStart   = 2
	optIsbEnd     = 3
	optIsbRecv    = 4
	optIsbDrop    = 5
	optIsbAccept  = 6

	// epb_flags direction bits.
	flagsInbound  = 1
	flagsOutbound = 2

	// maxBlock bounds a pcapng block or pcap record, so that a corrupt
	// length cannot make the reader allocate without limit. The writer
	// refuses packets that would not fit.
	maxBlock = 16 << 20
)

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }
