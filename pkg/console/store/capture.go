package store

import "time"

// AnyGeneration, as PutCaptures' ifMatch, replaces the captures whatever
// the current generation.
const AnyGeneration int64 = -1

// DesiredConfig is what a device should run.
type DesiredConfig struct {
	// Generation increases by one on every PutCaptures; 0 is a device
	// whose config was never set.
	Generation int64     `json:"generation"`
	Captures   []Capture `json:"captures"`
	// UpdatedAt is zero at generation 0.
	UpdatedAt time.Time `json:"updated_at"`
	// JobsSeq increases whenever the device's jobs change in a way its
	// agent must see (a job created for it, a cancel requested); 0 when
	// it never had a job.
	JobsSeq int64 `json:"jobs_seq"`
}

// Capture is one capture of a device's desired config. It mirrors a
// capture of the agent's config file (pkg/agent/config) key for key, in
// the file's own notation: the JSON of a []Capture under "captures" is a
// config file the agent's parser reads, so the console validates with it
// and the agent applies it. Values that take units in the file (sizes,
// durations, free space) are strings here, such as "512", "1GB", "6h",
// "10%".
type Capture struct {
	Name        string `json:"name"`
	Interface   string `json:"interface"`
	Filter      string `json:"filter,omitempty"`
	SnapLen     uint32 `json:"snaplen,omitempty"`
	Hook        string `json:"hook,omitempty"`      // auto, xdp, tc
	Direction   string `json:"direction,omitempty"` // in, out, both
	MonitorPort bool   `json:"monitor_port,omitempty"`
	Output      Output `json:"output"`
}

// Output is where and how a capture's files are written and kept.
type Output struct {
	Dir               string        `json:"dir"`
	Template          string        `json:"template,omitempty"`
	Format            string        `json:"format,omitempty"` // pcapng, pcap
	Rotate            *Rotate       `json:"rotate,omitempty"`
	Compress          string        `json:"compress,omitempty"` // none, zstd, gzip
	CompressLevel     int           `json:"compress_level,omitempty"`
	FrameSize         string        `json:"frame_size,omitempty"`
	Retention         *Retention    `json:"retention,omitempty"`
	Postrotate        string        `json:"postrotate,omitempty"`
	PostrotateTimeout string        `json:"postrotate_timeout,omitempty"`
	Export            *OutputExport `json:"export,omitempty"`
}

// Rotate says when a capture starts a new file.
type Rotate struct {
	SizeMB  string `json:"size_mb,omitempty"`
	Seconds string `json:"seconds,omitempty"`
	Keep    int    `json:"keep,omitempty"`
}

// Retention bounds the finished files kept.
type Retention struct {
	MaxBytes string `json:"max_bytes,omitempty"`
	MaxAge   string `json:"max_age,omitempty"`
	MinFree  string `json:"min_free,omitempty"`
}

// OutputExport uploads a capture's finished files.
type OutputExport struct {
	URL               string `json:"url"`
	DeleteAfterUpload bool   `json:"delete_after_upload,omitempty"`
}
