package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/storage"
)

type rawCapture struct {
	Name        ast.Node `yaml:"name"`
	Interface   ast.Node `yaml:"interface"`
	Filter      ast.Node `yaml:"filter"`
	SnapLen     ast.Node `yaml:"snaplen"`
	Hook        ast.Node `yaml:"hook"`
	Direction   ast.Node `yaml:"direction"`
	MonitorPort ast.Node `yaml:"monitor_port"`
	Output      ast.Node `yaml:"output"`
}

type rawOutput struct {
	Dir               ast.Node `yaml:"dir"`
	Template          ast.Node `yaml:"template"`
	Format            ast.Node `yaml:"format"`
	Rotate            ast.Node `yaml:"rotate"`
	Compress          ast.Node `yaml:"compress"`
	CompressLevel     ast.Node `yaml:"compress_level"`
	FrameSize         ast.Node `yaml:"frame_size"`
	Retention         ast.Node `yaml:"retention"`
	Postrotate        ast.Node `yaml:"postrotate"`
	PostrotateTimeout ast.Node `yaml:"postrotate_timeout"`
	Export            ast.Node `yaml:"export"`
}

type rawRotate struct {
	SizeMB  ast.Node `yaml:"size_mb"`
	Seconds ast.Node `yaml:"seconds"`
	Keep    ast.Node `yaml:"keep"`
}

type rawRetention struct {
	MaxBytes ast.Node `yaml:"max_bytes"`
	MaxAge   ast.Node `yaml:"max_age"`
	MinFree  ast.Node `yaml:"min_free"`
}

type rawOutputExport struct {
	URL               ast.Node `yaml:"url"`
	DeleteAfterUpload ast.Node `yaml:"delete_after_upload"`
}

// captures reads the captures list.
func (r *reader) captures(c *Config, n ast.Node) {
	if n == nil && r.noCaptures {
		return
	}
	if n == nil {
		r.ps.add(r.at(""), "captures", nil, "missing: add a captures list with at least one capture")
		return
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		r.fail(n, "captures", "want a list of captures (lines beginning with \"- name:\"), not %s", describe(n))
		return
	}
	if len(seq.Values) == 0 && !r.noCaptures {
		r.fail(n, "captures", "the list is empty: add at least one capture")
		return
	}
	for i, item := range seq.Values {
		path := fmt.Sprintf("captures[%d]", i)
		line := posOf(item).line
		v := r.value(item)
		r.nodes[path] = v
		if v == nil {
			r.fail(item, path, "the capture is empty: give at least its name, interface and output.dir")
			continue
		}
		if cp, ok := r.capture(v, path); ok {
			cp.Line = line
			c.Captures = append(c.Captures, cp)
			r.capPaths = append(r.capPaths, path)
		}
	}
}

// capture reads one capture; ok is false when it is not a mapping.
func (r *reader) capture(n ast.Node, path string) (Capture, bool) {
	cp := Capture{SnapLen: capture.DefaultSnapLen}
	var raw rawCapture
	if !r.mapping(n, path, "a capture", &raw) {
		return cp, false
	}
	if raw.Name == nil {
		r.ps.add(r.at(path), join(path, "name"), nil, "missing: give the capture a name such as web (lowercase letters, digits, _ . -)")
	} else if s, ok := r.str(raw.Name, join(path, "name")); ok {
		if err := checkName(s); err != nil {
			r.fail(raw.Name, join(path, "name"), "%q %v", s, err)
		} else {
			cp.Name = s
		}
	}
	if raw.Interface == nil {
		r.ps.add(r.at(path), join(path, "interface"), nil, "missing: give the network interface to capture on, such as interface: eth0")
	} else if s, ok := r.str(raw.Interface, join(path, "interface")); ok {
		if err := checkInterface(s); err != nil {
			r.fail(raw.Interface, join(path, "interface"), "%q %v", s, err)
		} else {
			cp.Interface = s
		}
	}
	if s, ok := r.str(raw.Filter, join(path, "filter")); ok && strings.TrimSpace(s) != "" {
		if msg, err := checkFilter(s); err != nil {
			r.failErr(raw.Filter, join(path, "filter"), err, "%s", msg)
		} else {
			cp.Filter = s
		}
	}
	if v, ok := r.integer(raw.SnapLen, join(path, "snaplen"), 1, capture.MaxSnapLen); ok {
		cp.SnapLen = uint32(v)
	}
	cp.Hook, _ = enum(r, raw.Hook, join(path, "hook"), capture.ParseHook)
	cp.Direction, _ = enum(r, raw.Direction, join(path, "direction"), capture.ParseDirection)
	cp.MonitorPort, _ = r.boolean(raw.MonitorPort, join(path, "monitor_port"))

	if cp.Hook == capture.HookXDP && cp.Direction != capture.DirIn {
		r.fail(raw.Direction, join(path, "direction"), "%s needs hook tc (or auto): XDP sees received frames only, so use direction in or hook tc", cp.Direction)
	}
	if cp.MonitorPort && cp.Direction != capture.DirIn {
		r.fail(raw.MonitorPort, join(path, "monitor_port"), "monitor_port drops the received frames, so it needs direction in (this capture has %s)", cp.Direction)
	}

	opath := join(path, "output")
	if raw.Output == nil {
		r.ps.add(r.at(path), join(opath, "dir"), nil, "missing: give the directory of the capture's files, such as output: {dir: /var/lib/ringtap/%s}", cmpOr(cp.Name, "NAME"))
		return cp, true
	}
	cp.Output = r.output(raw.Output, opath, cp.Name)
	return cp, true
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// output reads a capture's output section.
func (r *reader) output(n ast.Node, path, name string) Output {
	var o Output
	var raw rawOutput
	if !r.mapping(n, path, "an output", &raw) {
		return o
	}
	dpath := join(path, "dir")
	if raw.Dir == nil {
		r.ps.add(r.at(path), dpath, nil, "missing: give the directory of the capture's files, such as dir: /var/lib/ringtap/%s", cmpOr(name, "NAME"))
	} else if s, ok := r.str(raw.Dir, dpath); ok {
		if !filepath.IsAbs(s) {
			r.fail(raw.Dir, dpath, "%q is not an absolute path: write it from /, such as /var/lib/ringtap/%s", s, cmpOr(name, "NAME"))
		} else {
			o.Dir = filepath.Clean(s)
		}
	}
	o.Template, _ = r.str(raw.Template, join(path, "template"))
	o.Format, _ = enum(r, raw.Format, join(path, "format"), pcapio.ParseFormat)

	var rot rawRotate
	rpath := join(path, "rotate")
	if raw.Rotate != nil && r.mapping(raw.Rotate, rpath, "rotate", &rot) {
		if rot.SizeMB != nil {
			// As tcpdump's -C: a bare number is millions of bytes.
			s, ok := text(rot.SizeMB)
			if ok && strings.Trim(s, "0123456789.") == "" {
				s += "MB"
			}
			if !ok {
				r.fail(rot.SizeMB, join(rpath, "size_mb"), "want a number of megabytes (millions of bytes) such as 512, not %s", describe(rot.SizeMB))
			} else if v, err := storage.ParseSize(s); err != nil {
				r.failErr(rot.SizeMB, join(rpath, "size_mb"), err, "%v", err)
			} else if v < 4096 {
				r.fail(rot.SizeMB, join(rpath, "size_mb"), "%s is below 4096 bytes: rotate at a size such as 512 (MB)", literal(rot.SizeMB))
			} else {
				o.Rotate.Size = v
			}
		}
		if d, ok := r.duration(rot.Seconds, join(rpath, "seconds")); ok {
			if d < time.Millisecond {
				r.fail(rot.Seconds, join(rpath, "seconds"), "%s is below a millisecond: rotate after a time such as 300 (seconds) or 1h", literal(rot.Seconds))
			} else {
				o.Rotate.Age = d
			}
		}
		if v, ok := r.integer(rot.Keep, join(rpath, "keep"), 1, 1<<31-1); ok {
			if o.Rotate.Size == 0 && o.Rotate.Age == 0 && !r.bad[join(rpath, "size_mb")] && !r.bad[join(rpath, "seconds")] {
				r.fail(rot.Keep, join(rpath, "keep"), "keep needs rotation by size_mb or seconds: it keeps a ring of rotated files")
			} else {
				o.Rotate.Keep = int(v)
			}
		}
	}

	o.Compress, _ = enum(r, raw.Compress, join(path, "compress"), func(s string) (storage.Compression, error) {
		c, err := storage.ParseCompression(s)
		if err != nil {
			return c, fmt.Errorf("unknown compression %q: use zstd, gzip or none", s)
		}
		return c, nil
	})
	if v, ok := r.integer(raw.CompressLevel, join(path, "compress_level"), 1, 22); ok {
		switch {
		case o.Compress == storage.CompressNone:
			r.fail(raw.CompressLevel, join(path, "compress_level"), "a compression level needs compress: zstd or gzip")
		case o.Compress == storage.CompressGzip && v > 9:
			r.fail(raw.CompressLevel, join(path, "compress_level"), "%d is out of range for gzip: use 1 to 9", v)
		default:
			o.CompressLevel = int(v)
		}
	}
	if v, ok := r.size(raw.FrameSize, join(path, "frame_size")); ok {
		if v < storage.MinFrameSize || v > storage.MaxFrameSize {
			r.fail(raw.FrameSize, join(path, "frame_size"), "%s is out of range: use 64KiB to 64MiB", literal(raw.FrameSize))
		} else {
			o.FrameSize = int(v)
		}
	}

	var ret rawRetention
	if raw.Retention != nil && r.mapping(raw.Retention, join(path, "retention"), "retention", &ret) {
		o.Retention.MaxBytes, _ = r.size(ret.MaxBytes, join(path, "retention.max_bytes"))
		o.Retention.MaxAge, _ = r.duration(ret.MaxAge, join(path, "retention.max_age"))
		o.Retention.MinFree, _ = r.space(ret.MinFree, join(path, "retention.min_free"))
	}

	if s, ok := r.str(raw.Postrotate, join(path, "postrotate")); ok {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			r.fail(raw.Postrotate, join(path, "postrotate"), "%q is not a command: give the path of an executable, which runs as COMMAND FILE without a shell", s)
		} else {
			o.Postrotate = s
		}
	}
	o.PostrotateTimeout = r.positiveDuration(raw.PostrotateTimeout, join(path, "postrotate_timeout"), 0)
	if o.PostrotateTimeout != 0 && o.Postrotate == "" && !r.bad[join(path, "postrotate")] {
		r.fail(raw.PostrotateTimeout, join(path, "postrotate_timeout"), "postrotate_timeout needs a postrotate command")
	}

	var ex rawOutputExport
	epath := join(path, "export")
	if raw.Export != nil && r.mapping(raw.Export, epath, "export", &ex) {
		if ex.URL == nil {
			r.ps.add(r.at(epath), join(epath, "url"), nil, "missing: give the destination, such as url: s3://bucket/prefix/")
		} else if s, ok := r.str(ex.URL, join(epath, "url")); ok {
			if _, err := export.ParseURL(s); err != nil {
				r.failErr(ex.URL, join(epath, "url"), err, "%v", err)
			} else {
				o.Export.URL = s
			}
		}
		o.Export.DeleteAfterUpload, _ = r.boolean(ex.DeleteAfterUpload, join(epath, "delete_after_upload"))
	}

	// What storage checks beyond the above (the template): everything
	// but the file system, which Check looks at.
	if raw.Dir != nil && o.Dir != "" {
		so := storageOptions(Capture{Output: o})
		so.Postrotate = ""
		if err := validateOptions(so, false); err != nil {
			at, p := raw.Template, join(path, "template")
			if at == nil {
				at, p = n, path
			}
			r.failErr(at, p, err, "%s", storageMsg(err))
		}
	}
	return o
}

// RemoteProblems lists what captures from the console must not do, one
// sentence each ("captures[0].output.postrotate: ..."); nil when they are
// fine. output.postrotate runs a command for every finished file:
// accepting it from the console would give whoever administers the
// console a shell on every sensor. It is for the sensor's own file. The
// console refuses such captures (422) and the agent refuses them again.
func RemoteProblems(caps []Capture) []string {
	var out []string
	for i, c := range caps {
		if c.Output.Postrotate != "" {
			out = append(out, fmt.Sprintf("captures[%d].output.postrotate: a config from the console cannot run commands on the sensor: remove it (postrotate is for captures in the sensor's own config file)", i))
		}
	}
	return out
}
