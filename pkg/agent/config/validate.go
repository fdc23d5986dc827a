package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/storage"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// checkName checks a capture name; the error completes `"NAME" ...`.
func checkName(s string) error {
	if !nameRE.MatchString(s) {
		return errors.New(`is not a valid capture name: use 1 to 63 lowercase letters, digits, "_", "." or "-", beginning with a letter or digit`)
	}
	return nil
}

// checkInterface checks a Linux interface name as the kernel's
// dev_valid_name does; the error completes `"NAME" ...`.
func checkInterface(s string) error {
	switch {
	case s == "":
		return errors.New("is empty: give the name of a network interface such as eth0")
	case len(s) > 15:
		return fmt.Errorf("is %d bytes long, and Linux interface names have at most 15", len(s))
	case s == "." || s == "..":
		return errors.New(`is not a Linux interface name: give one such as eth0`)
	case strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) }):
		return errors.New(`is not a Linux interface name, which cannot hold "/", ":" or spaces: give one such as eth0`)
	}
	return nil
}

// checkListen checks a host:port; the error completes `"ADDR" ...`.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		if n, perr := strconv.ParseUint(port, 10, 16); perr != nil || (n == 0 && port != "0") {
			err = errors.New("bad port")
		}
	}
	if err != nil {
		return errors.New("is not a host:port address: write for example 127.0.0.1:9273 or [::1]:9273")
	}
	return nil
}

// crossChecks applies the rules between keys and between captures, on
// the values that were read without a mistake.
func (r *reader) crossChecks(c *Config, cpus int) {
	type seen struct {
		i    int
		path string
	}
	names := map[string]seen{}
	dirs := map[string]seen{}
	urls := map[string]seen{}
	type iface struct {
		first   seen
		count   int
		monitor bool
	}
	ifaces := map[string]*iface{}
	describeCapture := func(s seen) string {
		cp := c.Captures[s.i]
		d := s.path
		if cp.Name != "" {
			d += fmt.Sprintf(" %q", cp.Name)
		}
		return d + " (" + position{line: cp.Line}.String() + ")"
	}
	for i, cp := range c.Captures {
		path := r.capPaths[i]
		here := seen{i, path}
		if cp.Name != "" {
			if s, ok := names[cp.Name]; ok {
				r.fail(r.nodes[path+".name"], path+".name", "%q is already the name of %s: give each capture its own name", cp.Name, describeCapture(s))
			} else {
				names[cp.Name] = here
			}
		}
		if d := cp.Output.Dir; d != "" {
			if s, ok := dirs[d]; ok {
				r.fail(r.nodes[path+".output.dir"], path+".output.dir", "%s is also the directory of %s: their files would collide, so give each capture its own directory", d, describeCapture(s))
			} else {
				dirs[d] = here
			}
		}
		if u := cp.Output.Export.URL; u != "" {
			upath := path + ".output.export.url"
			if c.Export == nil {
				// No export section: its defaults, as export: {}.
				c.Export = defaultExport()
			}
			switch s, ok := urls[u]; {
			case ok && !strings.Contains(c.Export.KeyTemplate, "{capture"):
				r.fail(r.nodes[upath], upath, "%s is also the destination of %s, and export.key_template has no {capture}: their objects would collide, so add {capture} to the template or give each capture its own prefix", u, describeCapture(s))
			case !ok:
				urls[u] = here
			}
		}
		if cp.Interface == "" {
			continue
		}
		f, ok := ifaces[cp.Interface]
		if !ok {
			ifaces[cp.Interface] = &iface{first: here, count: 1, monitor: cp.MonitorPort}
			continue
		}
		f.count++
		if f.count == MaxCapturesPerInterface+1 {
			ipath := path + ".interface"
			r.fail(r.nodes[ipath], ipath, "%s already has %d captures, the most one interface can have: remove or merge captures on %s", cp.Interface, MaxCapturesPerInterface, cp.Interface)
		}
		mpath := path + ".monitor_port"
		if cp.MonitorPort != f.monitor && !r.bad[mpath] && !r.bad[f.first.path+".monitor_port"] {
			at := r.nodes[mpath]
			if at == nil {
				at = r.nodes[path]
			}
			r.fail(at, mpath, "is %t here but %t in %s on the same interface %s: monitor_port applies to the whole interface, so set it alike on every capture of %s",
				cp.MonitorPort, f.monitor, describeCapture(f.first), cp.Interface, cp.Interface)
		}
	}

	if r.bad["rings.size"] {
		return
	}
	// The ring must hold two records of the largest snapshot.
	big := -1
	for i, cp := range c.Captures {
		if cp.Interface != "" && !r.bad[r.capPaths[i]+".snaplen"] && (big < 0 || cp.SnapLen > c.Captures[big].SnapLen) {
			big = i
		}
	}
	if big >= 0 {
		cp := c.Captures[big]
		if rec := capture.RecordSize(cp.SnapLen); c.Rings.Size < 2*rec {
			r.ps.add(r.at("rings.size"), "rings.size", nil, "%s cannot hold two records of snaplen %d (%d bytes each) of %s on %s: use a size of at least %s, or a smaller snaplen",
				formatSize(int64(c.Rings.Size)), cp.SnapLen, rec, describeCapture(seen{big, r.capPaths[big]}), cp.Interface, formatSize(ceilPow2(int64(2*rec))))
		}
	}
	if c.MemoryBudget > 0 && len(ifaces) > 0 {
		if est := c.MemoryEstimate(cpus); est > c.MemoryBudget {
			r.ps.add(r.at("memory_budget"), "memory_budget", nil,
				"the config needs about %s (rings: %s × %d CPUs × %d interfaces; write queues: %s for %d captures), more than the budget of %s: use smaller rings.size, fewer interfaces or captures, or raise memory_budget",
				formatSize(est), formatSize(int64(c.Rings.Size)), cpus, len(ifaces), formatSize(c.queueBytes()), len(c.Captures), formatSize(c.MemoryBudget))
		}
	}
}

// Storage's write queue (storage.Options.withDefaults: queueChunks
// buffers of chunkSize bytes, at most the frame size when compressed).
// The storage package keeps these unexported; they are copied here.
const (
	storageQueueChunks = 64
	storageChunkSize   = 256 << 10
)

// MemoryEstimate is the memory, in bytes, that the captures' buffers
// take at most with cpus rings per interface: for every distinct
// interface, one ring of Rings.Size bytes per CPU; for every capture,
// its storage write queue (16 MiB by default). See the package
// documentation.
func (c *Config) MemoryEstimate(cpus int) int64 {
	ifaces := map[string]bool{}
	for _, cp := range c.Captures {
		ifaces[cp.Interface] = true
	}
	return int64(c.Rings.Size)*int64(cpus)*int64(len(ifaces)) + c.queueBytes()
}

// queueBytes is the sum of the captures' storage write queues.
func (c *Config) queueBytes() int64 {
	var n int64
	for _, cp := range c.Captures {
		n += cp.Output.queueBytes()
	}
	return n
}

// queueBytes is the size of the write queue of a Recorder for o.
func (o Output) queueBytes() int64 {
	chunk := storageChunkSize
	if o.Compress != storage.CompressNone {
		frame := o.FrameSize
		if frame == 0 {
			frame = storage.DefaultFrameSize
		}
		chunk = min(chunk, frame)
	}
	return storageQueueChunks * int64(chunk)
}

// formatSize writes n in the largest binary unit that divides it, else
// with one decimal.
func formatSize(n int64) string {
	units := []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	for _, u := range units {
		if n >= u.size {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func ceilPow2(n int64) int64 {
	p := int64(1)
	for p < n {
		p <<= 1
	}
	return p
}
