// Package filter turns tcpdump expressions into eBPF that ringtap's capture
// programs run. libpcap compiles the expression to classic BPF (Compile;
// ParseRaw reads `tcpdump -ddd` output instead), Translate turns the
// classic program into an eBPF function with the calling convention of
// the capture programs' filter stub, and Program.Splice puts it in place
// of the stub in a program spec before load. Explain shows both programs.
//
// The translated function sees the frame as the capture program copied it
// into its per-CPU scratch buffer: R1 points at the first byte, R2 holds
// the number of valid bytes (at most Options.Window), R3 the frame's
// length on the wire; it returns 0 to reject. Its verdict is libpcap's
// (pcap_offline_filter) for every frame: out-of-bounds loads and division
// by zero reject, shifts by 32 or more give 0, offsets do not wrap.
// TestDifferential checks this on every expression of
// testdata/filter/expressions.txt and every frame of
// testdata/filter/frames.pcap, in XDP and TC programs.
//
// Packet bounds checks are merged, after cloudflare/cbpfc: the classic
// program is a forward-only graph of basic blocks, and each block gets at
// most one check at its top, large enough for its constant-offset loads
// and for what every path from there is bound to load before it can
// accept, and none when every path into the block has checked as much.
// Rejecting a short frame earlier than classic BPF would is invisible: the
// verdict is the only output. Loads at computed offsets keep their own
// check.
//
// Program.Need is how many leading bytes of a frame the filter can read,
// from a value-range analysis of A, X and M[] over the program, so that
// the capture program copies no more than max(snaplen, Need) bytes.
//
// Differences from the kernel's classic BPF, where libpcap is followed:
// libpcap's "protochain" loops (backward jumps, which the kernel refuses)
// are translated as bounded loops that reject after LoopLimit iterations;
// ancillary loads (inbound, outbound, ifindex, ...) are refused with
// ErrLiveOnly, as XDP and TC programs have no socket metadata.
package filter
