package capture

// Counters are the BPF data path's counters for one capture on one
// interface and direction, summed over CPUs, since the capture started.
// They keep two invariants (exact once the capture is stopped): Seen =
// Matched + frames the capture's filter rejected, and Matched = Captured +
// Dropped + CopyFailed. Seen and FilterFailed are the program's: every
// capture on the interface and hook shares them.
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

// sub is c - o, field by field.
func (c Counters) sub(o Counters) Counters {
	return Counters{Seen: c.Seen - o.Seen, Matched: c.Matched - o.Matched, Captured: c.Captured - o.Captured,
		Bytes: c.Bytes - o.Bytes, Dropped: c.Dropped - o.Dropped, CopyFailed: c.CopyFailed - o.CopyFailed,
		FilterFailed: c.FilterFailed - o.FilterFailed}
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
	// Unowned counts records of the capture's interfaces whose slot had
	// no capture (should stay zero).
	Unowned uint64
}
