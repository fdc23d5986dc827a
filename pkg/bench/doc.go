// Package bench measures ringtap against tcpdump on the same path in the
// same run. Each round builds a fresh pair of test hosts (two network
// namespaces joined by a veth pair), starts one capturer on the receiving
// end, transmits frames from the sender with BPF_PROG_RUN live frames, stops
// the capturer and counts what reached its file. Tools alternate within a
// round and scenarios run several rounds; reports give the median.
//
// Figures per run: frames offered, frames captured, loss, captured packets
// per second over the generator's run time, CPU seconds of the capturing
// process per million packets, the generator's rate relative to a bare
// XDP program (the kernel-side cost of capturing), peak RSS, output bytes.
package bench
