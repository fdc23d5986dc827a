// Package pcapio writes and reads pcapng and classic pcap files.
//
// The writer is built for the capture hot path: WritePacket encodes into a
// large buffer with no allocation, pcapng enhanced packet blocks carry the
// direction flag, and StartSection begins a new section on a new io.Writer
// for rotation. We write our own encoder instead of gopacket's pcapgo
// because pcapgo allocates per packet (CaptureInfo, option encoding), has no
// epb_flags direction and no nanosecond classic pcap writer.
//
// The reader accepts classic pcap (both byte orders, micro- and
// nanosecond) and pcapng (both byte orders, several sections, if_tsresol in
// powers of 10 or 2, EPB/SPB/PB, interface statistics), and returns an
// error, never panics, on malformed input.
package pcapio
