package pcapio

import "fmt"

// Direction of a packet relative to its interface, as pcapng epb_flags
// bits 0-1 encode it.
type Direction uint8

const (
	DirUnknown Direction = iota
	DirInbound
	DirOutbound
)

// String returns "unknown", "inbound" or "outbound".
func (d Direction) String() string {
	switch d {
	case DirUnknown:
		return "unknown"
	case DirInbound:
		return "inbound"
	case DirOutbound:
		return "outbound"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Interface describes one capture interface: a pcapng interface
// description block, or the classic pcap header.
type Interface struct {
	Name        string
	Description string
	LinkType    uint16 // LINKTYPE_* value, 1 for Ethernet
	SnapLen     uint32 // 0 means no limit
}

// Packet is one captured frame.
type Packet struct {
	Timestamp int64  // Unix nanoseconds
	WireLen   uint32 // original length
	Interface int    // index into the writer's or reader's interface list
	Direction Direction
	Data      []byte // captured bytes, len(Data) <= WireLen
}

// InterfaceStats are the counters of a pcapng interface statistics block.
type InterfaceStats struct {
	Timestamp int64  // Unix nanoseconds
	Received  uint64 // isb_ifrecv
	Dropped   uint64 // isb_ifdrop
	Accepted  uint64 // isb_filteraccept
	// StartTime and EndTime (Unix nanoseconds) are isb_starttime and
	// isb_endtime: the span the counters cover. 0 leaves the option out.
	StartTime int64
	EndTime   int64
}
