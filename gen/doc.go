// Package gen holds the bpf2go output for bpf/capture.c: the compiled
// object (little-endian BPF) and its Go bindings. It is committed so that
// `go build` needs no clang; `make generate` rebuilds it and CI fails when
// regenerating changes anything.
package gen

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu" -target bpfel -type rt_record -type rt_counters -type rt_scratch Capture ../bpf/capture.c -- -I../bpf

// The size-class copy method, for BenchmarkCopyMethod only (bpf/copy_bench.c).
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu" -target bpfel CopyBench ../bpf/copy_bench.c -- -I../bpf
