package config

import (
	"time"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/storage"
)

// Defaults of the keys a config file may leave out, and limits.
const (
	DefaultListen              = "127.0.0.1:9273"
	DefaultRingSize            = capture.DefaultRingSize // 8 MiB
	DefaultShutdownHookTimeout = 10 * time.Second
	DefaultStopTimeout         = 30 * time.Second
	// DefaultUploadGrace is how long a graceful stop keeps uploading, as
	// ringtap capture's --upload-grace.
	DefaultUploadGrace = 30 * time.Second

	// MinRingSize and MaxRingSize bound rings.size, a power of two.
	MinRingSize = capture.MinRingSize // 16 KiB
	MaxRingSize = 1 << 30
	// MaxCapturesPerInterface is how many captures can share an
	// interface (a ring record's mask has a bit per capture).
	MaxCapturesPerInterface = capture.MaxCapturesPerInterface
	// MaxNameLen is the longest capture name.
	MaxNameLen = 63
)

// Config is an agent's configuration file, checked.
type Config struct {
	Captures []Capture
	HTTP     HTTP
	Rings    Rings
	// MemoryBudget bounds MemoryEstimate; 0 is no bound.
	MemoryBudget int64
	// Export is the agent-wide object store; nil when the file has no
	// export section and no capture uploads. Without the section, a
	// capture's output.export uploads with its defaults (AWS S3, the
	// AWS_* environment or the shared credentials file), as export: {}.
	Export *Export
	// Jobs are the limits of capture jobs (an enrolled agent's); the
	// defaults (DefaultJobs) without a jobs section.
	Jobs Jobs
	// ShutdownHook is a command run, without a shell, when the agent
	// stops; empty is none. It runs for at most ShutdownHookTimeout.
	ShutdownHook        string
	ShutdownHookTimeout time.Duration
	// StopTimeout bounds a graceful stop: files finished, uploads given
	// their grace.
	StopTimeout time.Duration
	// Source is the file name the config was read from, as given to Load
	// or Parse; messages begin with it.
	Source string

	// pos holds the position of every key that was given, by key path
	// ("captures[1].output.dir"), for the messages of Check.
	pos map[string]position
	// paths are the key paths of Captures as parsed.
	paths []string
}

// Capture is one capture of the agent: one filter on one interface,
// written to one directory.
type Capture struct {
	// Name is unique in the file: [a-z0-9][a-z0-9_.-]{0,62}. It names the
	// capture in file names ({capture}), object keys and metric labels.
	Name      string
	Interface string
	// Filter is a tcpdump expression; empty captures every frame.
	Filter      string
	SnapLen     uint32
	Hook        capture.Hook
	Direction   capture.Direction
	MonitorPort bool
	Output      Output
	// Line is where the capture begins in the file; Equal ignores it.
	Line int
}

// Output is where and how a capture's files are written and kept.
type Output struct {
	// Dir is an absolute directory, created if missing.
	Dir string
	// Template names the files; empty is storage.DefaultTemplate.
	Template string
	Format   pcapio.Format
	Rotate   Rotate
	Compress storage.Compression
	// CompressLevel: zstd 1-22, gzip 1-9; 0 is the compressor's default.
	CompressLevel int
	// FrameSize is the input size of a compressed frame; 0 is
	// storage.DefaultFrameSize.
	FrameSize int
	Retention Retention
	// Postrotate runs as "Postrotate FILE" for every finished file.
	Postrotate        string
	PostrotateTimeout time.Duration
	// Export uploads the finished files; a zero URL is no upload.
	Export OutputExport
}

// Rotate says when a capture starts a new file; zero values are no
// limit.
type Rotate struct {
	Size int64         // bytes of pcap data (output.rotate.size_mb)
	Age  time.Duration // output.rotate.seconds
	Keep int           // newest files kept, a ring; needs Size or Age
}

// Retention bounds the finished files kept in the output directory; zero
// values are no limit.
type Retention struct {
	MaxBytes int64
	MaxAge   time.Duration
	MinFree  storage.Space
}

// OutputExport uploads a capture's finished files to the agent-wide
// object store (Config.Export).
type OutputExport struct {
	URL               string // s3://bucket/prefix/; empty: no upload
	DeleteAfterUpload bool
}

// HTTP is the agent's metrics and health endpoint.
type HTTP struct {
	Listen string // host:port
	Pprof  bool   // serve /debug/pprof/ too
}

// Rings are the BPF ring buffers, shared by the captures of an
// interface: one ring of Size bytes per CPU.
type Rings struct {
	Size int
}

// Export is the agent-wide object store settings that captures with
// output.export upload with. Credentials are not part of the file: they
// come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN) or the shared credentials file, as for ringtap
// capture.
type Export struct {
	// Endpoint is http(s)://host[:port]; empty: AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL, else AWS S3.
	Endpoint string
	// Region; empty: AWS_REGION, AWS_DEFAULT_REGION, else the bucket's.
	Region          string
	Addressing      export.Addressing
	CAFile          string
	Checksum        export.Checksum // empty: md5, or crc32c with sse-kms and sse-c
	Encryption      export.Encryption
	KMSKeyID        string
	SSECKeyFile     string
	KeyTemplate     string
	PartSize        int64
	Concurrency     int
	CredentialsFile string
	Profile         string
	// Spool is the directory of pending uploads; each capture's
	// exporter has its own subdirectory (see ExportConfig).
	Spool        string
	StallTimeout time.Duration
	// UploadGrace is how long a graceful stop keeps uploading.
	UploadGrace time.Duration
}
