// Package desired turns a checked agent configuration (pkg/agent/config)
// into the pcap manager's desired set (pkg/pcapmgr.Desired): filters
// compiled to eBPF, storage and export options filled in, and a Key that
// changes exactly when a capture must restart. The agent's local file and
// the console's config (pkg/poller) go through the same function, so a
// capture means the same thing wherever it was written.
package desired
