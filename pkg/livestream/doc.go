// Package livestream carries a capture as it happens, as a pcapng stream,
// from the agent that captures to the admins who watch, without ever
// letting a slow reader slow the capture or the other readers.
//
// # Encoder (the agent)
//
// An Encoder is a capture's tee for one live push. WritePacket never
// blocks: it encodes an enhanced packet block (with pkg/pcapio) into a
// buffer of EncoderOptions.BufferBytes, or, when the buffer is full, drops
// the packet and counts it. WriteTo writes the section header and the
// interface descriptions, then the packets as they come, flushing its
// writer (http.Flusher or Flush() error) after each batch so that a
// chunked HTTP body delivers them at once. Every second, and at the end,
// it writes one interface statistics block per interface whose isb_osdrop
// is the number of that interface's packets this stream dropped, with an
// opt_comment saying so when it is not 0. WriteTo returns once Close was
// called and everything was written.
//
// # Hub (the console)
//
// A Hub is one run's live stream on the console. Publish reads a pcapng
// stream block by block (either byte order, several sections) and fans the
// blocks out to its subscribers; a newer Publish replaces an older, which
// returns ErrReplaced. The hub keeps the current section's header (the
// section header and interface description blocks) for the subscribers
// that join later, so that every subscriber's stream is a pcapng file on
// its own.
//
// Each Subscriber has a queue of its own, bounded in bytes. When it is
// full, packet blocks (enhanced, simple and obsolete packet blocks) are
// dropped for that subscriber alone and counted; every other block is
// always queued. Before the next block it delivers after a drop, the
// subscriber writes an interface statistics block for each interface that
// lost packets, whose isb_osdrop is the packets lost so far on that
// interface (its own drops plus those the agent's encoder reported) and
// whose opt_comment says why. The agent's own statistics blocks are
// rewritten the same way, so the last statistics block of an interface
// always counts every packet the reader of that stream did not get.
// Publishing never waits for a subscriber.
//
// End says the run ended: the publication stops, and each subscriber
// returns from WriteTo once its queue is written.
package livestream
