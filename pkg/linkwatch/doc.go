// Package linkwatch keeps an always-correct view of the network interfaces
// of one network namespace and tells subscribers when it changes.
//
// A Watcher subscribes to rtnetlink link events (RTM_NEWLINK, RTM_DELLINK)
// in the namespace and applies them to its view, keyed by interface index,
// so a rename is the old name disappearing and the new one appearing with
// the same index.
//
// Promises:
//   - The view converges on the kernel's. Netlink multicast is lossy: when
//     the socket's receive buffer overruns the kernel drops events and
//     reports ENOBUFS. On that and on any other error reported by the
//     subscription, the Watcher dumps all links (RTM_GETLINK) and replaces
//     its view with the dump; if the subscription ended (netlink ends it on
//     every receive error, ENOBUFS included) it subscribes again, with a
//     backoff between rapid failures, before dumping, so no change between
//     the two is missed. It also dumps every Options.Resync.
//   - Subscribers get one coalesced notification (a cap-1 channel, never a
//     blocking send) after any change of the view: a link appeared, went
//     away, was renamed, got a new index, went up or down, or changed MTU or
//     encapsulation. An event or dump that changes nothing notifies no one.
//   - Links and Lookup return copies; they are empty until the first dump
//     (Synced reports it) and safe to call from any goroutine.
//   - Run owns every goroutine it starts, including netlink's: before it
//     returns it closes each subscription's done channel and waits until
//     netlink's reader has closed the update channel. (netlink's other
//     goroutine, which only closes the socket once done is closed, cannot
//     be joined; it ends right after.) Run returns nil when its context
//     ends, and an error only when it cannot subscribe at all (or again,
//     after repeated attempts), so a supervisor can restart it.
//   - Bridge port notifications (family AF_BRIDGE, which include an
//     RTM_DELLINK when a port leaves a bridge) are not link deletions and
//     are ignored.
//
// Only Linux has rtnetlink; elsewhere Run returns an error wrapping
// errors.ErrUnsupported.
package linkwatch
