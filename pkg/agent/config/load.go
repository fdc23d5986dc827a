package config

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/ringtap/ringtap/pkg/capture"
)

// Option changes how Load and Parse check a file.
type Option func(*options)

type options struct {
	cpus       int
	noCaptures bool
}

// WithCPUs sets the number of CPUs the memory estimate counts a ring
// for. The default is the online CPUs (the capture package creates a ring
// per online CPU), else runtime.NumCPU.
func WithCPUs(n int) Option { return func(o *options) { o.cpus = n } }

// WithoutCaptures accepts a file with no captures (no captures key, an
// empty list, or an empty file): the file of an agent enrolled with a
// console, whose captures come from the console and whose file gives
// only the agent-wide settings (http, rings, export, ...).
func WithoutCaptures() Option { return func(o *options) { o.noCaptures = true } }

// DefaultCPUs is the number of rings per interface the memory estimate
// counts by default.
func DefaultCPUs() int {
	if n, err := capture.OnlineCPUs(); err == nil && n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// Load reads and checks the config file at path. Every mistake is an
// *Error; all of them are returned, joined, in file order.
func Load(path string, opts ...Option) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return Parse(data, path, opts...)
}

// Parse checks the config file data; source is its name in messages.
// It checks everything that needs no file system (see Check for the
// rest): syntax, keys, types, values, filters (compiled with libpcap),
// the rules between captures and the memory budget.
func Parse(data []byte, source string, opts ...Option) (*Config, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cpus <= 0 {
		o.cpus = DefaultCPUs()
	}
	r := newReader(data, source)
	r.noCaptures = o.noCaptures
	root, ok := r.document()
	if !ok {
		return nil, r.ps.err()
	}
	c := r.file(root)
	r.crossChecks(c, o.cpus)
	if err := r.ps.err(); err != nil {
		return nil, err
	}
	c.pos = make(map[string]position, len(r.nodes))
	for p, n := range r.nodes {
		c.pos[p] = posOf(n)
	}
	c.paths = r.capPaths
	return c, nil
}

// rawFile holds the top-level keys.
type rawFile struct {
	Captures            ast.Node `yaml:"captures"`
	HTTP                ast.Node `yaml:"http"`
	Rings               ast.Node `yaml:"rings"`
	MemoryBudget        ast.Node `yaml:"memory_budget"`
	Export              ast.Node `yaml:"export"`
	Jobs                ast.Node `yaml:"jobs"`
	ShutdownHook        ast.Node `yaml:"shutdown_hook"`
	ShutdownHookTimeout ast.Node `yaml:"shutdown_hook_timeout"`
	StopTimeout         ast.Node `yaml:"stop_timeout"`
}

type rawHTTP struct {
	Listen ast.Node `yaml:"listen"`
	Pprof  ast.Node `yaml:"pprof"`
}

type rawRings struct {
	Size ast.Node `yaml:"size"`
}

// file reads the document root.
func (r *reader) file(root ast.Node) *Config {
	c := &Config{
		Source:              r.ps.file,
		HTTP:                HTTP{Listen: DefaultListen},
		Rings:               Rings{Size: DefaultRingSize},
		ShutdownHookTimeout: DefaultShutdownHookTimeout,
		StopTimeout:         DefaultStopTimeout,
		Jobs:                DefaultJobs(),
	}
	root = r.value(root)
	if root == nil {
		if r.noCaptures {
			return c
		}
		r.ps.add(position{1, 0}, "captures", nil, "the file has no captures: add a captures list with at least one capture")
		return c
	}
	var f rawFile
	if !r.mapping(root, "", "the agent's config", &f) {
		return c
	}

	r.captures(c, f.Captures)

	var h rawHTTP
	if f.HTTP != nil && r.mapping(f.HTTP, "http", "http", &h) {
		if s, ok := r.str(h.Listen, "http.listen"); ok {
			if err := checkListen(s); err != nil {
				r.fail(h.Listen, "http.listen", "%q %v", s, err)
			} else {
				c.HTTP.Listen = s
			}
		}
		c.HTTP.Pprof, _ = r.boolean(h.Pprof, "http.pprof")
	}

	var rg rawRings
	if f.Rings != nil && r.mapping(f.Rings, "rings", "rings", &rg) {
		if n, ok := r.size(rg.Size, "rings.size"); ok {
			if n < MinRingSize || n > MaxRingSize || n&(n-1) != 0 {
				r.fail(rg.Size, "rings.size", "%s is not a power of two from 16KiB to 1GiB: use for example 4MiB or 8MiB", literal(rg.Size))
			} else {
				c.Rings.Size = int(n)
			}
		}
	}

	if n, ok := r.size(f.MemoryBudget, "memory_budget"); ok {
		c.MemoryBudget = n
	}

	if f.Export != nil {
		c.Export = r.export(f.Export)
	}
	if f.Jobs != nil {
		c.Jobs = r.jobs(f.Jobs)
	}

	if s, ok := r.str(f.ShutdownHook, "shutdown_hook"); ok {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			r.fail(f.ShutdownHook, "shutdown_hook", "%q is not a command: give the path of an executable (it runs without a shell)", s)
		} else {
			c.ShutdownHook = s
		}
	}
	c.ShutdownHookTimeout = r.positiveDuration(f.ShutdownHookTimeout, "shutdown_hook_timeout", c.ShutdownHookTimeout)
	c.StopTimeout = r.positiveDuration(f.StopTimeout, "stop_timeout", c.StopTimeout)
	return c
}
