// Package testbed builds throwaway test hosts: two network namespaces joined
// by a veth pair, for tests that must send real frames through the kernel.
//
// Promises:
//   - A Pair owns everything it creates: two named network namespaces
//     (bind mounts under /run/netns, as `ip netns add` makes them, so
//     `ip netns exec NAME` and other processes given Host.NSPath can enter
//     them) and the veth pair inside them. Nothing is created in the
//     caller's namespace. Close deletes both namespaces, which destroys the
//     veth; Close is idempotent.
//   - Names are random (one suffix per pair) and interface names fit in 15
//     bytes, so pairs made by concurrent tests or processes do not collide.
//   - Each end is up, loopback is up, and each end has a static neighbour
//     entry for the other, so no ARP (or ND) is needed to reach the peer.
//     Addresses come only from 198.18.0.0/15 (198.18.X.1/24 and .2) and,
//     with PairConfig.IPv6, from 2001:db8::/32 (2001:db8:X::1/64 and ::2,
//     without duplicate address detection). Without PairConfig.IPv6, IPv6 is
//     disabled in both namespaces, so the stack itself sends nothing on the
//     veth and frame counts in tests are exact.
//   - Host.Do runs a function inside a host's namespace on a locked OS thread
//     and never returns a thread to the Go scheduler in the wrong namespace.
//
// Everything but the types is Linux-only; elsewhere NewPair and Host.Do
// return an error.
package testbed
