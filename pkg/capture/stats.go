package capture

// Counters are the BPF data path's counters for one interface and
// direction, summed over CPUs. They keep two invariants (exact once the
// programs are detached): Seen = Matched + frames the filter rejected, and
// Matched = Captured + Dropped + CopyFailed.
type Counters struct {
	Seen     uint64 // frames the hook ran on
	Matched  uint64 // frames the filter accepted
	Captured uint64 // records written to a ring
	Bytes    uint64 // captured frame bytes
	Dropped  uint64 // matched frames lost because the ring was full
	// CopyFailed: matched frames lost because loading their bytes into
	// the ring record failed (should stay 0).
	CopyFailed uint64
	// FilterFailed: frames counted as rejected because loading the
	// filter's window failed (should stay 0).
	FilterFailed uint64
}

func (c *Counters) add(o Counters) {
	c.Seen += o.Seen
	c.Matched += o.Matched
	c.Captured += o.Captured
	c.Bytes += o.Bytes
	c.Dropped += o.Dropped
	c.CopyFailed += o.CopyFailed
	c.FilterFailed += o.FilterFailed
}

// Lost is every matched frame that did not reach a ring: ring overflow
// plus copy failures.
func (c Counters) Lost() uint64 { return c.Dropped + c.CopyFailed }

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
