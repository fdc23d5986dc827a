package export

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	minio "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

// clientRetries is how often minio-go repeats one request by itself (with
// its own backoff of at most 1 s). The exporter's backoff owns retries;
// this only rides out a blip inside an attempt without restarting a
// multipart upload, and lets an outage surface within a second or two.
const clientRetries = 3

// newCore builds the minio client for r: endpoint, addressing, TLS with
// the CA file, credentials.
func newCore(r resolved) (*minio.Core, error) {
	secure := r.endpoint.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("http transport: %w", err)
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, userErr(ErrBadCA, err, fmt.Sprintf("CA file %s cannot be read: %v", r.CAFile, unwrapPath(err)))
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, userErr(ErrBadCA, nil, fmt.Sprintf("CA file %s holds no PEM certificate", r.CAFile))
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}

	creds, err := newCredentials(r)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	switch r.Addressing {
	case AddressingPath:
		lookup = minio.BucketLookupPath
	case AddressingVirtual:
		lookup = minio.BucketLookupDNS
	}
	core, err := minio.NewCore(r.endpoint.Host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    tr,
		Region:       r.Region,
		BucketLookup: lookup,
		MaxRetries:   clientRetries,
	})
	if err != nil {
		return nil, userErr(ErrBadEndpoint, err, fmt.Sprintf("endpoint %s: %v", r.Endpoint, err))
	}
	core.SetAppInfo("ringtap", "export")
	return core, nil
}

// newCredentials: the explicit keys, else the AWS environment, else the
// shared credentials file. No credentials at all is a configuration error:
// anonymous uploads are almost always a mistake.
func newCredentials(r resolved) (*credentials.Credentials, error) {
	if r.AccessKeyID != "" || r.SecretAccessKey != "" {
		if r.AccessKeyID == "" || r.SecretAccessKey == "" {
			return nil, userErr(ErrCredentials, nil, "credentials need both an access key id and a secret access key")
		}
		return credentials.NewStaticV4(r.AccessKeyID, r.SecretAccessKey, r.SessionToken), nil
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Filename: r.CredentialsFile, Profile: r.Profile},
	})
	v, err := creds.GetWithContext(&credentials.CredContext{})
	if err != nil || v.AccessKeyID == "" || v.SignerType.IsAnonymous() {
		return nil, userErr(ErrCredentials, err, "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)")
	}
	return creds, nil
}

// newSSE is the encryption every object asks for.
func newSSE(r resolved) (encrypt.ServerSide, error) {
	switch r.Encryption {
	case EncryptionS3:
		return encrypt.NewSSE(), nil
	case EncryptionKMS:
		sse, err := encrypt.NewSSEKMS(r.KMSKeyID, nil)
		if err != nil {
			return nil, userErr(ErrBadConfig, err, fmt.Sprintf("SSE-KMS key %q: %v", r.KMSKeyID, err))
		}
		return sse, nil
	case EncryptionC:
		raw, err := os.ReadFile(r.SSECKeyFile)
		if err != nil {
			return nil, userErr(ErrBadConfig, err, fmt.Sprintf("SSE-C key file %s cannot be read: %v", r.SSECKeyFile, unwrapPath(err)))
		}
		key := raw
		if len(key) != 32 {
			key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		}
		if err != nil || len(key) != 32 {
			return nil, userErr(ErrBadConfig, nil, fmt.Sprintf("SSE-C key file %s must hold 32 bytes, raw or in base64", r.SSECKeyFile))
		}
		return encrypt.NewSSEC(key)
	}
	return nil, nil
}

// kind sorts failures by what they mean for retrying and logging.
type kind int

const (
	kindOutage      kind = iota // network, timeouts, 5xx, throttling: the store is away
	kindCredentials             // the store rejected the credentials
	kindRejected                // any other refusal (4xx, TLS): retried, logged as an error
	kindMismatch                // the object is not the file
	kindLocal                   // the local file could not be read
)

func (k kind) String() string {
	return [...]string{"outage", "credentials", "rejected", "checksum mismatch", "local file"}[k]
}

var credentialCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
}

var outageCodes = map[string]bool{
	"SlowDown": true, "ServiceUnavailable": true, "InternalError": true, "RequestTimeout": true,
	"XMinioServerNotInitialized": true, "XMinioStorageFull": true,
}

// localError marks a failure to read the local file.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

func classify(err error) kind {
	var mm *mismatchError
	var le *localError
	var er minio.ErrorResponse
	switch {
	case errors.As(err, &mm):
		return kindMismatch
	case errors.As(err, &le):
		return kindLocal
	case isTLSError(err):
		return kindRejected
	case errors.As(err, &er) && (er.Code != "" || er.StatusCode != 0):
		switch {
		case credentialCodes[er.Code]:
			return kindCredentials
		case outageCodes[er.Code], er.StatusCode >= 500, er.StatusCode == 429:
			return kindOutage
		}
		return kindRejected
	}
	return kindOutage
}

// errorCode is the S3 error code and message of err, if it has one.
func errorCode(err error) (code, msg string) {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code, er.Message
	}
	return "", ""
}

func isTLSError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// checkBucket is the check at start. A missing bucket, rejected
// credentials or an untrusted certificate are errors; a store that does
// not answer is an outage, returned as outage=true with the cause.
func checkBucket(ctx context.Context, core *minio.Core, r resolved) (outage bool, err error) {
	ok, err := core.BucketExists(ctx, r.Bucket)
	if err == nil {
		if !ok {
			return false, userErr(ErrNoBucket, nil, fmt.Sprintf("bucket %s does not exist at %s", r.Bucket, r.Endpoint))
		}
		return false, nil
	}
	if isTLSError(err) {
		var ue *url.Error
		cause := err
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		return false, userErr(ErrTLS, err, fmt.Sprintf("TLS to %s failed (%v): check the endpoint's scheme, or give the store's CA certificate with the CA file option", r.Endpoint, cause))
	}
	switch classify(err) {
	case kindOutage:
		return true, err
	case kindCredentials:
		code, msg := errorCode(err)
		// HEAD carries no error body: S3 answers 403 without saying why.
		// A listing of multipart uploads (which the exporter needs
		// anyway) tells InvalidAccessKeyId from SignatureDoesNotMatch.
		if _, lerr := core.ListMultipartUploads(ctx, r.Bucket, r.Prefix, "", "", "", 1); lerr != nil {
			if c, m := errorCode(lerr); c != "" {
				code, msg = c, m
			}
		}
		return false, userErr(ErrCredentials, err, fmt.Sprintf("the store rejected the credentials: %s: %s", code, strings.TrimSuffix(msg, ".")))
	}
	code, msg := errorCode(err)
	return false, fmt.Errorf("check bucket %s at %s: %s: %s: %w", r.Bucket, r.Endpoint, code, msg, err)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
