package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ringtap/ringtap/pkg/pcapio"
)

// Errors of Options.Validate and NewRecorder.
var (
	// ErrInvalid wraps every complaint about Options: a user's mistake
	// in a flag or a config file. The message names the problem.
	ErrInvalid = errors.New("invalid storage options")
	// ErrUnwritable: the output directory does not exist, is not a
	// directory, or cannot be written.
	ErrUnwritable = errors.New("cannot write the output directory")
	// ErrClosed is returned by a Recorder's methods after Close.
	ErrClosed = errors.New("recorder is closed")
)

// Compression of the files a Recorder writes.
type Compression int

const (
	CompressNone Compression = iota
	CompressZstd
	CompressGzip
)

// ParseCompression parses "zstd", "gzip", or "none" (or "") for none.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return CompressNone, nil
	case "zstd":
		return CompressZstd, nil
	case "gzip":
		return CompressGzip, nil
	}
	return 0, fmt.Errorf("%w: unknown compression %q: use zstd, gzip or none", ErrInvalid, s)
}

// String returns "none", "zstd" or "gzip".
func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressZstd:
		return "zstd"
	case CompressGzip:
		return "gzip"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// Ext is the file name extension of the compression: "", ".zst" or ".gz".
func (c Compression) Ext() string {
	switch c {
	case CompressZstd:
		return ".zst"
	case CompressGzip:
		return ".gz"
	}
	return ""
}

// Defaults.
const (
	DefaultFrameSize         = 1 << 20
	MinFrameSize             = 64 << 10
	MaxFrameSize             = 64 << 20
	DefaultZstdLevel         = 3
	DefaultGzipLevel         = 6
	DefaultPostrotateTimeout = 60 * time.Second
	DefaultRetentionInterval = 10 * time.Second
)

// Options configure a Recorder. Exactly one of Dir and File is set.
type Options struct {
	// Dir: files are named by Template inside this directory, which is
	// created (with its parents) if missing.
	Dir string
	// Template names the files of Dir (see DefaultTemplate, the
	// default): {iface} (the interfaces joined by "+"), {capture},
	// {host}, {start} or {start:GOLAYOUT} (the file's start in UTC) and
	// {seq} or {seq:WIDTH} (the file's sequence number from 0). The
	// compression's extension is appended when the template lacks it;
	// the default also gets .pcapng or .pcap. A "/" makes
	// subdirectories, which must stay inside Dir.
	Template string
	// File: one file, or with rotation files numbered as tcpdump does
	// (FILE, FILE1, ...; FILE0 ... with FileCount; strftime conversions
	// expanded with FileAge). Its directory must exist.
	File string

	Format      pcapio.Format
	Application string // pcapng shb_userappl
	// Interfaces of every file (NewRecorder needs them; Validate does
	// not).
	Interfaces []pcapio.Interface
	Capture    string // {capture}
	Host       string // {host}; default os.Hostname

	// FileSize rotates before a file's pcap data (uncompressed) would
	// exceed this many bytes; 0: no limit.
	FileSize int64
	// FileAge rotates a file this long after it started; 0: never.
	FileAge time.Duration
	// FileCount keeps the newest FileCount files (a ring); it needs
	// FileSize or FileAge.
	FileCount int

	Compression Compression
	// CompressionLevel: zstd 1-22 (mapped onto the encoder's four
	// speeds, default 3), gzip 1-9 (default 6). 0 is the default.
	CompressionLevel int
	// FrameSize: compressed files are a sequence of independent zstd
	// frames (gzip members), each of at most this many bytes of input
	// (default 1 MiB), cut at packet boundaries; a frame also ends after
	// a second without new data.
	FrameSize int

	// Retention of finished files in the output directory; zero values
	// are no limit.
	MaxBytes int64         // total size of the finished files
	MaxAge   time.Duration // age of a file's end
	MinFree  Space         // free space on the file system (statfs)
	// RetentionInterval: retention runs after each finished file and
	// at this interval (default 10 s).
	RetentionInterval time.Duration

	// Postrotate runs as "Postrotate PATH" (no shell) for every finished
	// file, with PostrotateTimeout (default 60 s), outside the writer.
	Postrotate        string
	PostrotateTimeout time.Duration

	// Stats returns the capture's cumulative counters per interface;
	// sampled at each rotation for the per-file statistics blocks.
	// Without it, only WriteInterfaceStats writes statistics.
	Stats func() []pcapio.InterfaceStats
	// OnFinish is called for every finished file after its rename, from
	// the Recorder's finishing goroutine, in order (for the files
	// recovered at start, from NewRecorder before it returns). It must
	// return quickly (enqueue and return): while it runs, the next file
	// cannot be finished and the write queue fills.
	OnFinish func(FinishedFile)
	// Pinned says whether a finished file must be kept (not yet
	// exported). Retention deletes a pinned file only when the free
	// space cannot be restored otherwise, counting a loss. It is called
	// from the retention goroutine.
	Pinned func(path string) bool

	Logger *slog.Logger // default slog.Default()

	// Knobs for tests.
	queueChunks   int                       // buffers between writer and output
	chunkSize     int                       // bytes per buffer
	wrapOutput    func(io.Writer) io.Writer // e.g. a slow disk
	now           func() time.Time
	frameAge      time.Duration // idle time after which a frame ends
	resumeBackoff time.Duration // between attempts after a write error
	space         func(dir string) (avail, total int64, err error)
	waitForQueue  bool // benchmarks: wait for the output instead of dropping
}

// Validate checks o without creating anything: sizes, template, the
// output directory's existence and permissions, the postrotate command.
// NewRecorder calls it too; call it before attaching a capture, so that a
// mistake costs nothing.
func (o *Options) Validate() error {
	if (o.Dir == "") == (o.File == "") {
		return fmt.Errorf("%w: give either an output directory or a file", ErrInvalid)
	}
	switch {
	case o.FileSize < 0:
		return fmt.Errorf("%w: file size limit %d is negative", ErrInvalid, o.FileSize)
	case o.FileAge < 0:
		return fmt.Errorf("%w: file rotation time %v is negative", ErrInvalid, o.FileAge)
	case o.FileAge > 0 && o.FileAge < time.Millisecond:
		return fmt.Errorf("%w: file rotation time %v is below a millisecond", ErrInvalid, o.FileAge)
	case o.FileCount < 0:
		return fmt.Errorf("%w: file count %d is negative", ErrInvalid, o.FileCount)
	case o.FileCount > 0 && o.FileSize == 0 && o.FileAge == 0:
		return fmt.Errorf("%w: a file count (-W) needs rotation by size (-C) or time (-G)", ErrInvalid)
	case o.FileSize > 0 && o.FileSize < 4096:
		return fmt.Errorf("%w: file size limit %d is below 4096 bytes", ErrInvalid, o.FileSize)
	}
	if _, err := o.level(); err != nil {
		return err
	}
	if o.Compression < CompressNone || o.Compression > CompressGzip {
		return fmt.Errorf("%w: unknown compression %d", ErrInvalid, o.Compression)
	}
	if o.FrameSize != 0 && (o.FrameSize < MinFrameSize || o.FrameSize > MaxFrameSize) {
		return fmt.Errorf("%w: frame size %d out of range: use %d KiB to %d MiB", ErrInvalid, o.FrameSize, MinFrameSize>>10, MaxFrameSize>>20)
	}
	switch {
	case o.MaxBytes < 0:
		return fmt.Errorf("%w: retention size %d is negative", ErrInvalid, o.MaxBytes)
	case o.MaxAge < 0:
		return fmt.Errorf("%w: retention age %v is negative", ErrInvalid, o.MaxAge)
	case o.MinFree.Bytes < 0 || o.MinFree.Percent < 0 || o.MinFree.Percent >= 100:
		return fmt.Errorf("%w: minimum free space %s out of range", ErrInvalid, o.MinFree)
	case o.RetentionInterval < 0:
		return fmt.Errorf("%w: retention interval %v is negative", ErrInvalid, o.RetentionInterval)
	case o.PostrotateTimeout < 0:
		return fmt.Errorf("%w: postrotate timeout %v is negative", ErrInvalid, o.PostrotateTimeout)
	}
	if o.Postrotate != "" {
		if _, err := exec.LookPath(o.Postrotate); err != nil {
			return fmt.Errorf("%w: postrotate command %q: %w", ErrInvalid, o.Postrotate, err)
		}
	}
	if _, err := o.namer(nameValues{iface: "eth0", capture: "c", host: "h"}); err != nil {
		return err
	}
	return o.checkDir()
}

// level is the effective compression level.
func (o *Options) level() (int, error) {
	l := o.CompressionLevel
	switch o.Compression {
	case CompressZstd:
		if l == 0 {
			return DefaultZstdLevel, nil
		}
		if l < 1 || l > 22 {
			return 0, fmt.Errorf("%w: zstd level %d out of range: use 1 to 22", ErrInvalid, l)
		}
	case CompressGzip:
		if l == 0 {
			return DefaultGzipLevel, nil
		}
		if l < 1 || l > 9 {
			return 0, fmt.Errorf("%w: gzip level %d out of range: use 1 to 9", ErrInvalid, l)
		}
	default:
		if l != 0 {
			return 0, fmt.Errorf("%w: a compression level needs a compression", ErrInvalid)
		}
	}
	return l, nil
}

// root is the directory the files go to.
func (o *Options) root() string {
	if o.Dir != "" {
		return o.Dir
	}
	return filepath.Dir(o.File)
}

// rotates says whether there is more than one file.
func (o *Options) rotates() bool { return o.FileSize > 0 || o.FileAge > 0 }

// ext is the default extension of the files.
func (o *Options) ext() string {
	e := ".pcapng"
	if o.Format == pcapio.FormatPCAP {
		e = ".pcap"
	}
	return e + o.Compression.Ext()
}

// namer builds the namer for the recorder's values.
func (o *Options) namer(v nameValues) (namer, error) {
	if o.File != "" {
		base := filepath.Base(o.File)
		if err := checkName("-w "+o.File, base); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		n, err := newFileNamer(base, o.rotates(), o.FileAge > 0, o.FileCount)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return n, nil
	}
	src, ext := o.Template, o.Compression.Ext()
	if src == "" {
		src, ext = DefaultTemplate, o.ext()
	}
	t, err := parseTemplate(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	n, err := newDirNamer(t, ext, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return n, nil
}

// checkDir checks that the output directory exists and can be written,
// or, for Dir, that its nearest existing ancestor can (NewRecorder then
// creates it).
func (o *Options) checkDir() error {
	dir := o.root()
	for {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%w: %s is not a directory", ErrUnwritable, dir)
		case err == nil:
			if err := writable(dir); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrUnwritable, dir, err)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%w: %w", ErrUnwritable, err)
		case o.File != "":
			return fmt.Errorf("%w: directory %s does not exist", ErrUnwritable, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("%w: %s does not exist", ErrUnwritable, o.root())
		}
		dir = parent
	}
}

// withDefaults fills in the defaults of a validated o.
func (o Options) withDefaults() Options {
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = DefaultRetentionInterval
	}
	if o.PostrotateTimeout == 0 {
		o.PostrotateTimeout = DefaultPostrotateTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.queueChunks == 0 {
		o.queueChunks = 64
	}
	if o.chunkSize == 0 {
		o.chunkSize = 256 << 10
	}
	if o.Compression != CompressNone {
		o.chunkSize = min(o.chunkSize, o.FrameSize)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.frameAge == 0 {
		o.frameAge = time.Second
	}
	if o.resumeBackoff == 0 {
		o.resumeBackoff = time.Second
	}
	if o.space == nil {
		o.space = diskSpace
	}
	return o
}
