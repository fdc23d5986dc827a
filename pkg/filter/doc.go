// Package filter turns tcpdump expressions into eBPF that ringtap's capture
// programs run: libpcap compiles the expression to classic BPF (Compile),
// our translator turns classic BPF into an eBPF function with the capture
// stub's calling convention (Translate), and the result replaces the stub's
// body in a program spec before load (Program.Splice).
//
// The translated function sees the frame as copied into the capture
// program's per-CPU scratch buffer: R1 points at the first byte, R2 holds
// the number of valid bytes, R3 the frame's original length; it returns 0
// to reject. Its verdict equals libpcap's for every frame: out-of-bounds
// loads and division by zero reject, as in classic BPF. Packet bounds checks
// are merged per basic block across the forward-only program (the design of
// cloudflare/cbpfc, which is not reachable here, so this is our own).
//
// Program.Need says how many leading bytes of a frame the filter can read,
// from a value-range analysis of the program, so the capture program copies
// no more than max(snaplen, Need) bytes per frame.
package filter
