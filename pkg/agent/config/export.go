package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/ringtap/ringtap/pkg/export"
)

type rawExport struct {
	Endpoint        ast.Node `yaml:"endpoint"`
	Region          ast.Node `yaml:"region"`
	Addressing      ast.Node `yaml:"addressing"`
	CA              ast.Node `yaml:"ca"`
	Checksum        ast.Node `yaml:"checksum"`
	SSE             ast.Node `yaml:"sse"`
	KMSKey          ast.Node `yaml:"kms_key"`
	SSECKey         ast.Node `yaml:"ssec_key"`
	KeyTemplate     ast.Node `yaml:"key_template"`
	PartSize        ast.Node `yaml:"part_size"`
	Concurrency     ast.Node `yaml:"concurrency"`
	CredentialsFile ast.Node `yaml:"credentials_file"`
	Profile         ast.Node `yaml:"profile"`
	Spool           ast.Node `yaml:"spool"`
	StallTimeout    ast.Node `yaml:"stall_timeout"`
	UploadGrace     ast.Node `yaml:"upload_grace"`
}

// defaultExport is the export section's defaults, export: {}: AWS S3,
// credentials from the AWS_* environment or the shared credentials file.
func defaultExport() *Export {
	return &Export{
		Addressing:   export.AddressingAuto,
		KeyTemplate:  export.DefaultKeyTemplate,
		PartSize:     export.DefaultPartSize,
		Concurrency:  export.DefaultConcurrency,
		Spool:        export.DefaultSpool,
		StallTimeout: export.DefaultStallTimeout,
		UploadGrace:  DefaultUploadGrace,
	}
}

// export reads the agent-wide export section. It checks what
// export.New would reject without I/O, so that the message has a line.
func (r *reader) export(n ast.Node) *Export {
	e := defaultExport()
	var raw rawExport
	if !r.mapping(n, "export", "export", &raw) {
		return e
	}
	if s, ok := r.str(raw.Endpoint, "export.endpoint"); ok {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			r.fail(raw.Endpoint, "export.endpoint", "%q is not a URL like https://host[:port] without a path: give the store's address, or leave it out for AWS S3", s)
		} else {
			e.Endpoint = s
		}
	}
	e.Region, _ = r.str(raw.Region, "export.region")
	e.Addressing, _ = enum(r, raw.Addressing, "export.addressing", func(s string) (export.Addressing, error) {
		switch a := export.Addressing(s); a {
		case export.AddressingAuto, export.AddressingPath, export.AddressingVirtual:
			return a, nil
		}
		return "", fmt.Errorf("unknown addressing %q: use auto, path or virtual", s)
	})
	if e.Addressing == "" {
		e.Addressing = export.AddressingAuto
	}
	e.CAFile, _ = r.absPath(raw.CA, "export.ca")
	e.Encryption, _ = enum(r, raw.SSE, "export.sse", func(s string) (export.Encryption, error) {
		switch x := export.Encryption(s); x {
		case export.EncryptionS3, export.EncryptionKMS, export.EncryptionC:
			return x, nil
		case "none", "":
			return export.EncryptionNone, nil
		}
		return "", fmt.Errorf("unknown server-side encryption %q: use sse-s3, sse-kms, sse-c or none", s)
	})
	e.KMSKeyID, _ = r.str(raw.KMSKey, "export.kms_key")
	e.SSECKeyFile, _ = r.absPath(raw.SSECKey, "export.ssec_key")
	switch {
	case e.Encryption == export.EncryptionKMS && e.KMSKeyID == "" && !r.bad["export.kms_key"]:
		r.fail(raw.SSE, "export.sse", "sse-kms needs a KMS key id: add kms_key")
	case e.Encryption == export.EncryptionC && e.SSECKeyFile == "" && !r.bad["export.ssec_key"]:
		r.fail(raw.SSE, "export.sse", "sse-c needs a key: add ssec_key, the path of a file holding 32 bytes (raw or base64)")
	case e.Encryption == export.EncryptionC && e.Endpoint != "" && !strings.HasPrefix(e.Endpoint, "https://"):
		r.fail(raw.SSE, "export.sse", "sse-c sends the key with every request, so it needs an https:// endpoint")
	}
	if e.KMSKeyID != "" && e.Encryption != export.EncryptionKMS {
		r.fail(raw.KMSKey, "export.kms_key", "kms_key needs sse: sse-kms")
	}
	if e.SSECKeyFile != "" && e.Encryption != export.EncryptionC {
		r.fail(raw.SSECKey, "export.ssec_key", "ssec_key needs sse: sse-c")
	}
	e.Checksum, _ = enum(r, raw.Checksum, "export.checksum", func(s string) (export.Checksum, error) {
		switch c := export.Checksum(s); c {
		case "", export.ChecksumNone, export.ChecksumMD5, export.ChecksumCRC32C, export.ChecksumSHA256:
			return c, nil
		}
		return "", fmt.Errorf("unknown checksum %q: use md5, crc32c, sha256 or none", s)
	})
	if e.Checksum == export.ChecksumMD5 && (e.Encryption == export.EncryptionKMS || e.Encryption == export.EncryptionC) {
		r.fail(raw.Checksum, "export.checksum", "md5 cannot be verified with %s (the ETag is not the MD5 of the content then): use crc32c or sha256", e.Encryption)
	}
	if s, ok := r.str(raw.KeyTemplate, "export.key_template"); ok {
		if _, err := export.ParseKeyTemplate(s); err != nil {
			r.failErr(raw.KeyTemplate, "export.key_template", err, "%v", err)
		} else {
			e.KeyTemplate = s
		}
	}
	if v, ok := r.size(raw.PartSize, "export.part_size"); ok {
		if v < export.MinPartSize || v > export.MaxPartSize {
			r.fail(raw.PartSize, "export.part_size", "%s is out of S3's range: use 5MiB to 5GiB", literal(raw.PartSize))
		} else {
			e.PartSize = v
		}
	}
	if v, ok := r.integer(raw.Concurrency, "export.concurrency", 1, export.MaxConcurrency); ok {
		e.Concurrency = int(v)
	}
	e.CredentialsFile, _ = r.absPath(raw.CredentialsFile, "export.credentials_file")
	e.Profile, _ = r.str(raw.Profile, "export.profile")
	if s, ok := r.absPath(raw.Spool, "export.spool"); ok {
		e.Spool = s
	}
	e.StallTimeout = r.positiveDuration(raw.StallTimeout, "export.stall_timeout", e.StallTimeout)
	if d, ok := r.duration(raw.UploadGrace, "export.upload_grace"); ok {
		e.UploadGrace = d
	}
	return e
}

// absPath reads an absolute path.
func (r *reader) absPath(n ast.Node, path string) (string, bool) {
	s, ok := r.str(n, path)
	if !ok {
		return "", false
	}
	if !filepath.IsAbs(s) {
		r.fail(n, path, "%q is not an absolute path: write it from /", s)
		return "", false
	}
	return filepath.Clean(s), true
}

// ExportConfig is the export.Config of a capture's output.export: the
// destination url, deleteAfterUpload, and e's settings, with the spool
// e.Spool/spool (each exporter needs its own spool: pass the capture's
// name). Credentials and, when e leaves them empty, the endpoint and
// region come from the environment, as export.Config documents. Logger
// is left for the caller.
func (e *Export) ExportConfig(url string, deleteAfterUpload bool, spool string) (export.Config, error) {
	cfg, err := export.ParseURL(url)
	if err != nil {
		return cfg, err
	}
	if spool == "" || spool != filepath.Base(spool) || spool == "." || spool == ".." {
		return cfg, fmt.Errorf("spool %q: want one path element, such as the capture's name", spool)
	}
	cfg.Endpoint, cfg.Region, cfg.Addressing, cfg.CAFile = e.Endpoint, e.Region, e.Addressing, e.CAFile
	cfg.Checksum, cfg.Encryption, cfg.KMSKeyID, cfg.SSECKeyFile = e.Checksum, e.Encryption, e.KMSKeyID, e.SSECKeyFile
	cfg.KeyTemplate, cfg.PartSize, cfg.Concurrency = e.KeyTemplate, e.PartSize, e.Concurrency
	cfg.CredentialsFile, cfg.Profile = e.CredentialsFile, e.Profile
	cfg.Spool = filepath.Join(e.Spool, spool)
	cfg.StallTimeout = e.StallTimeout
	cfg.DeleteAfterUpload = deleteAfterUpload
	return cfg, nil
}
