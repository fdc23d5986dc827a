package export

import "errors"

// Sentinel errors. New wraps them in an error whose message is one
// sentence for the user; test them with errors.Is.
var (
	// ErrBadURL: the destination is not s3://bucket[/prefix/].
	ErrBadURL = errors.New("bad export URL")
	// ErrBadEndpoint: the endpoint is not an http:// or https:// URL.
	ErrBadEndpoint = errors.New("bad endpoint")
	// ErrNoBucket: the store answered that the bucket does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrCredentials: no credentials were found, or the store rejected
	// them (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch).
	ErrCredentials = errors.New("credentials rejected")
	// ErrBadCA: the CA file cannot be read or holds no PEM certificate.
	ErrBadCA = errors.New("bad CA file")
	// ErrTLS: the store's certificate is not trusted, or the endpoint
	// does not speak the scheme it was given.
	ErrTLS = errors.New("TLS failure")
	// ErrBadTemplate: the object key template does not parse.
	ErrBadTemplate = errors.New("bad key template")
	// ErrBadConfig: an option is out of range or options contradict each
	// other (part size, concurrency, checksum, encryption, key file).
	ErrBadConfig = errors.New("bad export configuration")
	// ErrSpoolLocked: another process holds the spool directory.
	ErrSpoolLocked = errors.New("spool in use")
	// ErrKeyConflict: Enqueue was given a file whose object key is
	// already pending for another file.
	ErrKeyConflict = errors.New("object key conflict")
	// ErrClosed: the exporter has been closed.
	ErrClosed = errors.New("exporter closed")
	// ErrRunning: Run was called while Run or Drain is already uploading.
	ErrRunning = errors.New("exporter already running")
)

// userError is one sentence for the user that still matches its sentinel
// with errors.Is, and the cause (if any) with errors.As.
type userError struct {
	sentinel error
	msg      string
	cause    error
}

func (e *userError) Error() string { return e.msg }

func (e *userError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}

func userErr(sentinel error, cause error, msg string) error {
	return &userError{sentinel: sentinel, msg: msg, cause: cause}
}
