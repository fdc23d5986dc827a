package capture

// Counters are the BPF data path's counters for one interface and
// direction, summed over CPUs.
type Counters struct {
	Seen     uint64 // frames the hook ran on
	Matched  uint64 // frames the filter accepted
	Captured uint64 // records written to a ring
	Bytes    uint64 // captured frame bytes
	Dropped  uint64 // matched frames lost because the ring was full
}

func (c *Counters) add(o Counters) {
	c.Seen += o.Seen
	c.Matched += o.Matched
	c.Captured += o.Captured
	c.Bytes += o.Bytes
	c.Dropped += o.Dropped
}

// InterfaceStats are the counters of one captured interface.
type InterfaceStats struct {
	Name    string
	Index   int
	In, Out Counters
}

// Total is In plus Out.
func (s InterfaceStats) Total() Counters {
	t := s.In
	t.add(s.Out)
	return t
}

// Stats describe a capture so far.
type Stats struct {
	Interfaces []InterfaceStats
	// Written is how many packets were handed to the writer.
	Written uint64
	// Discarded counts records the kernel discarded in the rings (should
	// stay zero: the programs never discard).
	Discarded uint64
}
