// Package config reads and checks the config file of `ringtap agent`
// (YAML, see testdata/agent/example.yaml for every key) and computes what
// a reload changes.
//
// What it promises:
//
//   - A config that Load or Parse returns is complete and consistent:
//     every default filled in, every filter compiled with libpcap and
//     translated to eBPF, every rule between captures checked. What needs
//     the file system (output directories writable, postrotate and
//     shutdown commands found) is left to Check, so that a config can be
//     checked on another host.
//
//   - Every mistake is one *Error, a sentence that names the file, the
//     line and column, the key path and what to do:
//
//     agent.yaml:7:14: captures[1].snaplen: 300000 is out of range: use 1 to 262144
//
//     All mistakes of a file are returned, sorted by position and joined
//     with errors.Join (one per line); each wraps ErrInvalid. Only a
//     YAML syntax error stops the reading: after an unknown key or a bad
//     value, the rest of the file is still checked.
//
//   - Unknown keys are errors (goccy/go-yaml's DisallowUnknownField),
//     with the nearest known key suggested. Keys that begin with "x-"
//     are ignored anywhere, so that a file can keep YAML anchors that
//     captures merge (<<: *defaults).
//
// # Values
//
// Sizes are a YAML integer (bytes) or a string with a unit, as
// storage.ParseSize reads it: KB, MB, GB, TB are powers of 1000; KiB,
// MiB, GiB, TiB and K, M, G, T powers of 1024. output.rotate.size_mb is
// the exception: a bare number is millions of bytes, as tcpdump's -C.
// Durations are a YAML integer (seconds) or a string such as 90s, 15m,
// 6h, 30d or 1d12h (storage.ParseDuration). min_free is a percentage
// ("10%") or a size.
//
// # Defaults
//
//	captures[].filter              "" (every frame)
//	captures[].snaplen             262144
//	captures[].hook                auto: xdp for direction in, tc otherwise
//	captures[].direction           in
//	captures[].monitor_port        false
//	captures[].output.template     {iface}-{start}-{seq} + .pcapng/.pcap (+ .zst/.gz)
//	captures[].output.format       pcapng
//	captures[].output.rotate       none: one file (size_mb, seconds: no limit; keep: all)
//	captures[].output.compress     none (compress_level: zstd 3, gzip 6; frame_size 1MiB)
//	captures[].output.retention    none (max_bytes, max_age, min_free: no limit)
//	captures[].output.postrotate_timeout  60s
//	http.listen                    127.0.0.1:9273
//	http.pprof                     false
//	rings.size                     8MiB
//	memory_budget                  none
//	export.addressing              auto
//	export.checksum                md5 (crc32c with sse-kms and sse-c)
//	export.key_template            {prefix}{host}/{capture}/{date}/{name}
//	export.part_size               16MiB
//	export.concurrency             1
//	export.spool                   /var/lib/ringtap/spool
//	export.stall_timeout           2m
//	export.upload_grace            30s
//	jobs.max_concurrent            2
//	jobs.dir                       STATE/jobs (the agent's --state directory)
//	jobs.max_bytes                 2GiB
//	jobs.min_free                  5%
//	shutdown_hook_timeout          10s
//	stop_timeout                   30s
//
// # Rules between keys
//
//   - Capture names are unique; so are output directories (their files
//     would collide).
//   - hook xdp needs direction in; monitor_port needs direction in, and
//     is a property of the interface: every capture of an interface has
//     the same value.
//   - At most MaxCapturesPerInterface (64) captures share an interface.
//   - output.export needs the top-level export section. Two captures with
//     the same export URL need a key_template with {capture}.
//   - rings.size is a power of two from 16KiB to 1GiB and holds two
//     records of the largest snaplen (capture.RecordSize).
//
// # Memory estimate
//
// MemoryEstimate counts the large buffers, which stay for the captures'
// life:
//
//	rings.size × CPUs × distinct interfaces
//	+ Σ over captures of the storage write queue:
//	  64 buffers × 256KiB = 16MiB (compressed: 64 × min(256KiB, frame_size))
//
// CPUs are the online CPUs (the capture package creates a ring per
// online CPU), unless WithCPUs says otherwise. With memory_budget set,
// Parse rejects a config whose estimate exceeds it. The estimate leaves
// out the Go heap, compressors' state and the kernel's per-program
// memory, which are small next to it.
//
// # Reload
//
// Compare matches two lists of captures by name: captures only in the
// new list are Added, captures only in the old Removed (a rename is
// both), and captures whose settings differ (Capture.Equal, which
// ignores the line) Changed. Order and comments do not matter.
// CompareConfig also counts a capture as changed when an agent-wide
// setting it uses changed: rings for every capture, export for those
// that upload.
//
// StorageOptions and Export.ExportConfig turn a capture into the options
// of pkg/storage and pkg/export.
package config
