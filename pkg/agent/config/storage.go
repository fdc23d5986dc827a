package config

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/ringtap/ringtap/pkg/storage"
)

// StorageOptions are the storage.Options of the capture's output,
// checked with Options.Validate (which looks at the file system: the
// directory must exist or be creatable, and be writable; the postrotate
// command must be found). The caller adds what the config does not
// hold: Interfaces, Application, Stats, OnFinish, Pinned (for export)
// and Logger.
func (c Capture) StorageOptions() (storage.Options, error) {
	o := storageOptions(c)
	if err := validateOptions(o, true); err != nil {
		return o, fmt.Errorf("capture %s: %w", c.Name, err)
	}
	return o, nil
}

// storageOptions maps c's output onto storage.Options.
func storageOptions(c Capture) storage.Options {
	out := c.Output
	return storage.Options{
		Dir:               out.Dir,
		Template:          out.Template,
		Format:            out.Format,
		Capture:           c.Name,
		FileSize:          out.Rotate.Size,
		FileAge:           out.Rotate.Age,
		FileCount:         out.Rotate.Keep,
		Compression:       out.Compress,
		CompressionLevel:  out.CompressLevel,
		FrameSize:         out.FrameSize,
		MaxBytes:          out.Retention.MaxBytes,
		MaxAge:            out.Retention.MaxAge,
		MinFree:           out.Retention.MinFree,
		Postrotate:        out.Postrotate,
		PostrotateTimeout: out.PostrotateTimeout,
	}
}

// validateOptions is o.Validate; without fs, a directory that cannot be
// written is not a mistake (the file system may change before the
// capture starts).
func validateOptions(o storage.Options, fs bool) error {
	err := o.Validate()
	if !fs && errors.Is(err, storage.ErrUnwritable) {
		return nil
	}
	return err
}

// storageMsg is a storage error without the sentinel's words.
func storageMsg(err error) string {
	return strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": ")
}

// Check looks at what Parse leaves to the file system: each capture's
// output directory (it must exist, or its nearest existing parent, and be
// writable), its postrotate command and the shutdown hook (they must be
// found). Like Parse, it returns every mistake as an *Error with its
// line, joined. The agent calls it before it applies a config.
func (c *Config) Check() error {
	ps := &problems{file: c.Source}
	at := func(path string) position {
		for p := path; p != ""; p = parent(p) {
			if pos, ok := c.pos[p]; ok {
				return pos
			}
		}
		return position{1, 0}
	}
	for i, cp := range c.Captures {
		err := validateOptions(storageOptions(cp), true)
		if err == nil {
			continue
		}
		path := fmt.Sprintf("captures[%d].output", i)
		if len(c.paths) == len(c.Captures) {
			path = c.paths[i] + ".output"
		}
		switch {
		case errors.Is(err, storage.ErrUnwritable):
			ps.add(at(path+".dir"), path+".dir", err, "%s: create it, let the agent's user write it, or choose another directory", err)
		case cp.Output.Postrotate != "":
			ps.add(at(path+".postrotate"), path+".postrotate", err, "%s: install it or fix the path", storageMsg(err))
		default:
			ps.add(at(path), path, err, "%s", storageMsg(err))
		}
	}
	if c.ShutdownHook != "" {
		if _, err := exec.LookPath(c.ShutdownHook); err != nil {
			ps.add(at("shutdown_hook"), "shutdown_hook", err, "%v: install it or fix the path", err)
		}
	}
	return ps.err()
}
