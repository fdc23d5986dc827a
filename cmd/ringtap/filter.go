package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// buildFilter turns an expression or a tcpdump -ddd file into the capture's
// filter; nil when neither is given (capture everything).
func buildFilter(expr, bpfFile string) (*capture.Filter, error) {
	switch {
	case bpfFile != "":
		text, err := os.ReadFile(bpfFile)
		if err != nil {
			return nil, fmt.Errorf("read --bpf-file: %w", err)
		}
		raw, err := filter.ParseRaw(string(text))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bpfFile, err)
		}
		return filter.ForCaptureRaw(raw)
	case strings.TrimSpace(expr) != "":
		return filter.ForCapture(expr)
	}
	return nil, nil
}

const filterUsage = `usage:
  ringtap filter explain [-y LINKTYPE] EXPRESSION
  ringtap filter test -r FILE [-w OUT] EXPRESSION
`

func runFilter(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, filterUsage)
		return fmt.Errorf("%w: filter needs a subcommand", errUsage)
	}
	switch args[0] {
	case "explain":
		return runFilterExplain(args[1:], stdout, stderr)
	case "test":
		return runFilterTest(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, filterUsage)
	return fmt.Errorf("%w: unknown filter subcommand %q", errUsage, args[0])
}

func runFilterExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("filter explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	linkType := fs.Uint("y", capture.LinkTypeEthernet, "pcap link type (1 Ethernet, 101 raw IP)")
	merge := fs.Bool("merge-checks", true, "merge packet bounds checks (false: one check per load)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	expr := strings.Join(fs.Args(), " ")
	if strings.TrimSpace(expr) == "" {
		return fmt.Errorf("%w: give a filter EXPRESSION", errUsage)
	}
	raw, err := filter.Compile(expr, uint16(*linkType))
	if err != nil {
		return err
	}
	p, err := filter.Translate(raw, filter.Options{MergeChecks: *merge, Window: capture.MaxWindow})
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, filter.Explain(p))
	return nil
}

func runFilterTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("filter test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("r", "", "pcap or pcapng file to read")
	out := fs.String("w", "", "write matching packets here (same format as the input)")
	hookName := fs.String("hook", "auto", "program to run: xdp, tc, or auto (xdp where the kernel has it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	expr := strings.Join(fs.Args(), " ")
	if *in == "" {
		return fmt.Errorf("%w: give the file to read with -r FILE", errUsage)
	}
	hook, err := capture.ParseHook(*hookName)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	src, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer src.Close()
	r, err := pcapio.NewReader(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", *in, err)
	}
	var w *pcapio.Writer
	var dst *os.File
	testers := map[uint16]*capture.Tester{}
	defer func() {
		for _, t := range testers {
			t.Close()
		}
	}()
	var p pcapio.Packet
	var total, matched, skipped uint64
	for {
		err := r.Next(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", *in, err)
		}
		total++
		lt := r.Interfaces()[p.Interface].LinkType
		t, ok := testers[lt]
		if !ok {
			f, err := buildFilter(expr, "")
			if err != nil {
				return err
			}
			if t, err = capture.NewTester(hook, 0, f, lt); err != nil {
				return err
			}
			testers[lt] = t
		}
		hit, err := t.MatchRecord(p.Data, p.WireLen)
		if errors.Is(err, capture.ErrNotRunnable) {
			if skipped == 0 {
				fmt.Fprintf(stderr, "packet %d not run: %v\n", total, err)
			}
			skipped++
			continue
		}
		if err != nil {
			return err
		}
		if !hit {
			continue
		}
		matched++
		if *out == "" {
			continue
		}
		if w == nil {
			if w, dst, err = createLike(*out, r); err != nil {
				return err
			}
			defer dst.Close()
		}
		if err := w.WritePacket(&p); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	if w == nil && *out != "" {
		// No match: a valid file without packets, as tcpdump writes.
		if w, dst, err = createLike(*out, r); err != nil {
			return err
		}
		defer dst.Close()
	}
	if w != nil {
		if err := w.Close(); err != nil {
			return fmt.Errorf("finish %s: %w", *out, err)
		}
		if err := dst.Close(); err != nil {
			return fmt.Errorf("close %s: %w", *out, err)
		}
	}
	fmt.Fprintf(stdout, "%d of %d packets match\n", matched, total)
	if skipped > 0 {
		fmt.Fprintf(stderr, "%d packets were not run: the kernel refused them (try --hook xdp)\n", skipped)
	}
	return nil
}

// createLike creates path as a capture file of r's format and interfaces.
func createLike(path string, r *pcapio.Reader) (*pcapio.Writer, *os.File, error) {
	ifaces := r.Interfaces()
	if len(ifaces) == 0 {
		ifaces = []pcapio.Interface{{LinkType: capture.LinkTypeEthernet}}
	}
	dst, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot write the output file: %w", err)
	}
	w, err := pcapio.NewWriter(dst, pcapio.WriterOptions{Format: r.Format(), Application: "ringtap " + version, Interfaces: ifaces})
	if err != nil {
		dst.Close()
		return nil, nil, fmt.Errorf("start output: %w", err)
	}
	return w, dst, nil
}
