package export

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Checksum is how an upload is checked end to end: sent with every request
// (the store rejects a request whose body does not match) and compared
// after the upload with what the store reports for the object.
type Checksum string

const (
	// ChecksumNone sends no checksum; only the size is verified. Over
	// plain HTTP the signed payload (SigV4 streaming) still protects the
	// body in transit.
	ChecksumNone Checksum = "none"
	// ChecksumMD5 sends Content-MD5 with every PUT and every part, and
	// compares the object's ETag with the one computed locally (the MD5
	// of the file, or for a multipart upload the MD5 of the parts' MD5s
	// followed by "-N"). Content-MD5 is as old as S3 itself: every
	// S3-compatible store accepts it. It is the default, except with
	// SSE-KMS and SSE-C, where the ETag is not the MD5 of the content.
	ChecksumMD5 Checksum = "md5"
	// ChecksumCRC32C sends x-amz-checksum-crc32c (per part, composite for
	// multipart uploads) and compares the store's reported checksum. It
	// needs a store with S3's additional checksums (2022); older
	// S3-compatible stores reject or ignore the header. The default with
	// SSE-KMS and SSE-C.
	ChecksumCRC32C Checksum = "crc32c"
	// ChecksumSHA256 is like ChecksumCRC32C with SHA-256.
	ChecksumSHA256 Checksum = "sha256"
)

// Encryption is the server-side encryption asked for every object.
type Encryption string

const (
	// EncryptionNone leaves encryption to the bucket's default.
	EncryptionNone Encryption = ""
	// EncryptionS3 is SSE-S3: keys managed by the store.
	EncryptionS3 Encryption = "sse-s3"
	// EncryptionKMS is SSE-KMS with Config.KMSKeyID.
	EncryptionKMS Encryption = "sse-kms"
	// EncryptionC is SSE-C with the 32-byte key in Config.SSECKeyFile.
	// The store requires HTTPS for it.
	EncryptionC Encryption = "sse-c"
)

// Addressing selects how the bucket is put into request URLs.
type Addressing string

const (
	// AddressingAuto uses virtual-host style for AWS (and the other
	// endpoints minio-go knows to support it: Google, Aliyun) and path
	// style for every other endpoint, which is what MinIO, Ceph and most
	// self-hosted stores expect.
	AddressingAuto Addressing = "auto"
	// AddressingPath always uses https://endpoint/bucket/key.
	AddressingPath Addressing = "path"
	// AddressingVirtual always uses https://bucket.endpoint/key.
	AddressingVirtual Addressing = "virtual"
)

// Defaults.
const (
	DefaultKeyTemplate  = "{prefix}{host}/{capture}/{date}/{name}"
	DefaultSpool        = "/var/lib/ringtap/spool"
	DefaultPartSize     = 16 << 20
	MinPartSize         = 5 << 20
	MaxPartSize         = 5 << 30
	DefaultConcurrency  = 1
	MaxConcurrency      = 64
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultStartTimeout = 10 * time.Second
	DefaultStallTimeout = 2 * time.Minute
	// maxParts is S3's limit on the parts of one multipart upload; a file
	// that would need more gets a larger part size.
	maxParts = 10000
)

// Config is one export destination and how to reach it. Zero values mean
// the defaults. Start from ParseURL and set the options.
type Config struct {
	// Bucket and Prefix are the destination, from s3://bucket/prefix/.
	// A non-empty Prefix ends with "/".
	Bucket string
	Prefix string

	// Endpoint is the store's URL (http://host:port or https://host).
	// Empty: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then AWS S3.
	Endpoint string
	// Region: empty means AWS_REGION, then AWS_DEFAULT_REGION, then the
	// bucket's location as the store reports it.
	Region string
	// Addressing: path or virtual-host style; default AddressingAuto.
	Addressing Addressing
	// CAFile is a PEM file of CA certificates trusted for the endpoint,
	// in addition to the system's.
	CAFile string

	// AccessKeyID, SecretAccessKey and SessionToken are explicit
	// credentials. Empty: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_SESSION_TOKEN, then the shared credentials file
	// (CredentialsFile or AWS_SHARED_CREDENTIALS_FILE or
	// ~/.aws/credentials, profile Profile or AWS_PROFILE or "default").
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	CredentialsFile string
	Profile         string

	// Encryption, with KMSKeyID for SSE-KMS and SSECKeyFile (32 raw bytes
	// or their base64) for SSE-C.
	Encryption  Encryption
	KMSKeyID    string
	SSECKeyFile string

	// Checksum: empty means ChecksumMD5, or ChecksumCRC32C with SSE-KMS
	// and SSE-C (see the constants for why).
	Checksum Checksum

	// KeyTemplate makes object keys; default DefaultKeyTemplate. See
	// ParseKeyTemplate for the placeholders.
	KeyTemplate string
	// Host is {host}; default os.Hostname().
	Host string

	// PartSize is the multipart part size; files up to this size go in
	// one PUT. Default 16 MiB, minimum 5 MiB, maximum 5 GiB; a file that
	// would need more than 10000 parts gets larger parts.
	PartSize int64
	// Concurrency is how many parts of a file are uploaded at once;
	// default 1. Parts are read from the file as they are sent, so it
	// multiplies connections, not memory.
	Concurrency int

	// Spool is the directory of pending uploads; default DefaultSpool.
	Spool string
	// DeleteAfterUpload removes the local file, and its sidecar
	// (FinishedFile.Sidecar, else path + ".json") if there is one, once
	// the store has confirmed the upload and the spool entry is gone.
	DeleteAfterUpload bool

	// RetryMin and RetryMax bound the exponential backoff between
	// attempts (with jitter); defaults 1 s and 5 min.
	RetryMin, RetryMax time.Duration
	// StartTimeout bounds the bucket check in New; default 10 s. A store
	// that does not answer in time is an outage, not an error.
	StartTimeout time.Duration
	// StallTimeout fails an attempt that has sent no byte for this long
	// (a half-open connection); default 2 min, more than the transport's
	// 1 min wait for a response between parts.
	StallTimeout time.Duration

	// Logger; default slog.Default().
	Logger *slog.Logger

	hooks *hooks // tests only
}

// ParseURL returns a Config for the destination s3://bucket[/prefix/],
// with every option at its default.
func ParseURL(raw string) (Config, error) {
	bad := func(why string) (Config, error) {
		return Config{}, userErr(ErrBadURL, nil, fmt.Sprintf("export URL %q %s: write s3://bucket/prefix/", raw, why))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("does not parse")
	}
	switch {
	case u.Scheme != "s3":
		return bad("is not an s3:// URL")
	case u.Host == "":
		return bad("has no bucket")
	case u.User != nil || u.Port() != "":
		return bad("has a user or port, which belong in the endpoint")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("has a query or fragment")
	}
	if err := s3utils.CheckValidBucketNameStrict(u.Host); err != nil {
		return bad(fmt.Sprintf("has an invalid bucket name (%v)", err))
	}
	prefix := strings.TrimLeft(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if strings.Contains(prefix, "//") {
		return bad("has an empty path segment")
	}
	return Config{Bucket: u.Host, Prefix: prefix}, nil
}

// Destination is s3://bucket/prefix.
func (c Config) Destination() string { return "s3://" + c.Bucket + "/" + c.Prefix }

// resolved is a Config with defaults and environment applied and checked.
type resolved struct {
	Config
	endpoint *url.URL
	checksum Checksum
	tmpl     *KeyTemplate
	logger   *slog.Logger
}

// resolve applies defaults and the environment and checks every option
// that needs no I/O, except the template and files (see New).
func (c Config) resolve() (resolved, error) {
	r := resolved{Config: c}
	if c.Bucket == "" {
		return r, userErr(ErrBadURL, nil, "the export destination has no bucket: write s3://bucket/prefix/")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return r, userErr(ErrBadURL, err, fmt.Sprintf("bucket name %q is invalid: %v", c.Bucket, err))
	}
	if r.Prefix != "" && !strings.HasSuffix(r.Prefix, "/") {
		r.Prefix += "/"
	}

	ep := c.Endpoint
	if ep == "" {
		ep = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if ep == "" {
		ep = os.Getenv("AWS_ENDPOINT_URL")
	}
	if ep == "" {
		ep = "https://s3.amazonaws.com"
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return r, userErr(ErrBadEndpoint, nil, fmt.Sprintf("endpoint %q is not a URL like https://host[:port] (no path)", ep))
	}
	r.endpoint = u
	r.Endpoint = u.Scheme + "://" + u.Host

	if r.Region == "" {
		r.Region = os.Getenv("AWS_REGION")
	}
	if r.Region == "" {
		r.Region = os.Getenv("AWS_DEFAULT_REGION")
	}

	switch r.Addressing {
	case "":
		r.Addressing = AddressingAuto
	case AddressingAuto, AddressingPath, AddressingVirtual:
	default:
		return r, userErr(ErrBadConfig, nil, fmt.Sprintf("addressing %q is not auto, path or virtual", r.Addressing))
	}

	switch r.Encryption {
	case EncryptionNone, EncryptionS3:
	case EncryptionKMS:
		if r.KMSKeyID == "" {
			return r, userErr(ErrBadConfig, nil, "SSE-KMS needs a KMS key id")
		}
	case EncryptionC:
		if r.SSECKeyFile == "" {
			return r, userErr(ErrBadConfig, nil, "SSE-C needs a key file holding 32 bytes (raw or base64)")
		}
		if u.Scheme != "https" {
			return r, userErr(ErrBadConfig, nil, "SSE-C sends the key with every request, so it needs an https:// endpoint")
		}
	default:
		return r, userErr(ErrBadConfig, nil, fmt.Sprintf("encryption %q is not sse-s3, sse-kms or sse-c", r.Encryption))
	}

	etagIsMD5 := r.Encryption != EncryptionKMS && r.Encryption != EncryptionC
	switch r.Checksum {
	case "":
		r.checksum = ChecksumMD5
		if !etagIsMD5 {
			r.checksum = ChecksumCRC32C
		}
	case ChecksumMD5:
		if !etagIsMD5 {
			return r, userErr(ErrBadConfig, nil, fmt.Sprintf("checksum md5 cannot be verified with %s (the ETag is not the MD5 of the content then): use crc32c or sha256", r.Encryption))
		}
		r.checksum = ChecksumMD5
	case ChecksumNone, ChecksumCRC32C, ChecksumSHA256:
		r.checksum = r.Checksum
	default:
		return r, userErr(ErrBadConfig, nil, fmt.Sprintf("checksum %q is not none, md5, crc32c or sha256", r.Checksum))
	}
	r.Checksum = r.checksum

	if r.PartSize == 0 {
		r.PartSize = DefaultPartSize
	}
	if r.PartSize < MinPartSize || r.PartSize > MaxPartSize {
		return r, userErr(ErrBadConfig, nil, fmt.Sprintf("part size %d is outside S3's range of 5 MiB to 5 GiB", r.PartSize))
	}
	if r.Concurrency == 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.Concurrency < 1 || r.Concurrency > MaxConcurrency {
		return r, userErr(ErrBadConfig, nil, fmt.Sprintf("concurrency %d is outside 1 to %d", r.Concurrency, MaxConcurrency))
	}
	if r.Spool == "" {
		r.Spool = DefaultSpool
	}
	if r.RetryMin == 0 {
		r.RetryMin = DefaultRetryMin
	}
	if r.RetryMax == 0 {
		r.RetryMax = DefaultRetryMax
	}
	if r.RetryMin < 0 || r.RetryMax < r.RetryMin {
		return r, userErr(ErrBadConfig, nil, fmt.Sprintf("retry backoff %v to %v is not an increasing range", r.RetryMin, r.RetryMax))
	}
	if r.StartTimeout <= 0 {
		r.StartTimeout = DefaultStartTimeout
	}
	if r.StallTimeout <= 0 {
		r.StallTimeout = DefaultStallTimeout
	}
	if r.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		r.Host = h
	}
	if r.KeyTemplate == "" {
		r.KeyTemplate = DefaultKeyTemplate
	}
	t, err := ParseKeyTemplate(r.KeyTemplate)
	if err != nil {
		return r, err
	}
	r.tmpl = t
	r.logger = r.Logger
	if r.logger == nil {
		r.logger = slog.Default()
	}
	r.logger = r.logger.With("component", "export", "destination", r.Destination())
	return r, nil
}

// partSizeFor is the part size used for a file of the given size: the
// configured one, raised (to a MiB multiple) when the file would need
// more than S3's 10000 parts.
func partSizeFor(configured, size int64) int64 {
	if size <= configured*maxParts {
		return configured
	}
	ps := (size + maxParts - 1) / maxParts
	const mib = 1 << 20
	return (ps + mib - 1) / mib * mib
}
