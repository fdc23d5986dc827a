package export

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/export/miniotest"
)

// TestBadInput: every configuration mistake is one sentence that matches
// its sentinel, and nothing is created on disk (no spool).
func TestBadInput(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	tlsSrv := mustServer(t, miniotest.Options{TLS: true})
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	mustWrite(t, notPEM, []byte("not a certificate\n"))
	untrusted := miniotest.UntrustedCAFile(t)

	tests := []struct {
		name    string
		url     string
		edit    func(*Config)
		wantErr error
		wantMsg string
	}{
		{name: "not s3", url: "http://captures/x/", wantErr: ErrBadURL,
			wantMsg: `export URL "http://captures/x/" is not an s3:// URL: write s3://bucket/prefix/`},
		{name: "no bucket", url: "s3:///x/", wantErr: ErrBadURL,
			wantMsg: `export URL "s3:///x/" has no bucket: write s3://bucket/prefix/`},
		{name: "invalid bucket name", url: "s3://Bad_Bucket/", wantErr: ErrBadURL,
			wantMsg: `export URL "s3://Bad_Bucket/" has an invalid bucket name (Bucket name contains invalid characters): write s3://bucket/prefix/`},
		{name: "missing bucket", url: "s3://nosuchbucket/x/", wantErr: ErrNoBucket,
			wantMsg: "bucket nosuchbucket does not exist at " + srv.Endpoint},
		{name: "wrong secret", edit: func(c *Config) { c.SecretAccessKey = "wrong-secret" }, wantErr: ErrCredentials,
			wantMsg: "the store rejected the credentials: SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method"},
		{name: "unknown access key", edit: func(c *Config) { c.AccessKeyID = "nobody" }, wantErr: ErrCredentials,
			wantMsg: "the store rejected the credentials: InvalidAccessKeyId: The Access Key Id you provided does not exist in our records"},
		{name: "CA file missing", edit: func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, wantErr: ErrBadCA,
			wantMsg: "CA file /nonexistent/ca.pem cannot be read: no such file or directory"},
		{name: "CA file not PEM", edit: func(c *Config) { c.CAFile = notPEM }, wantErr: ErrBadCA,
			wantMsg: "CA file " + notPEM + " holds no PEM certificate"},
		{name: "CA did not sign the server", edit: func(c *Config) { c.Endpoint, c.CAFile = tlsSrv.Endpoint, untrusted }, wantErr: ErrTLS,
			wantMsg: "TLS to " + tlsSrv.Endpoint + " failed (tls: failed to verify certificate: x509: certificate signed by unknown authority): check the endpoint's scheme, or give the store's CA certificate with the CA file option"},
		{name: "https to an http server", edit: func(c *Config) { c.Endpoint = "https://" + srv.Addr() }, wantErr: ErrTLS,
			wantMsg: "TLS to https://" + srv.Addr() + " failed (http: server gave HTTP response to HTTPS client): check the endpoint's scheme, or give the store's CA certificate with the CA file option"},
		{name: "endpoint not http", edit: func(c *Config) { c.Endpoint = "ftp://" + srv.Addr() }, wantErr: ErrBadEndpoint,
			wantMsg: `endpoint "ftp://` + srv.Addr() + `" is not a URL like https://host[:port] (no path)`},
		{name: "unknown placeholder", edit: func(c *Config) { c.KeyTemplate = "{host}/{bogus}/{name}" }, wantErr: ErrBadTemplate,
			wantMsg: `key template "{host}/{bogus}/{name}" has an unknown placeholder {bogus}: use {prefix}, {host}, {iface}, {capture}, {start:LAYOUT}, {seq}, {name} or {date}`},
		{name: "template without name", edit: func(c *Config) { c.KeyTemplate = "{prefix}{host}/{date}" }, wantErr: ErrBadTemplate,
			wantMsg: `key template "{prefix}{host}/{date}" has neither {name} nor {seq}, so every file would get the same key`},
		{name: "part size too small", edit: func(c *Config) { c.PartSize = 1 << 20 }, wantErr: ErrBadConfig,
			wantMsg: "part size 1048576 is outside S3's range of 5 MiB to 5 GiB"},
		{name: "unknown checksum", edit: func(c *Config) { c.Checksum = "crc64" }, wantErr: ErrBadConfig,
			wantMsg: `checksum "crc64" is not none, md5, crc32c or sha256`},
		{name: "md5 with SSE-KMS", edit: func(c *Config) { c.Checksum, c.Encryption, c.KMSKeyID = ChecksumMD5, EncryptionKMS, "k" }, wantErr: ErrBadConfig,
			wantMsg: "checksum md5 cannot be verified with sse-kms (the ETag is not the MD5 of the content then): use crc32c or sha256"},
		{name: "SSE-C over http", edit: func(c *Config) { c.Encryption, c.SSECKeyFile = EncryptionC, "/k" }, wantErr: ErrBadConfig,
			wantMsg: "SSE-C sends the key with every request, so it needs an https:// endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, srv)
			if tt.url != "" {
				u, err := ParseURL(tt.url)
				if err != nil {
					mustBadInput(t, err, tt.wantErr, tt.wantMsg)
					return
				}
				cfg.Bucket, cfg.Prefix = u.Bucket, u.Prefix
			}
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			x, err := New(cfg)
			if err == nil {
				x.Close()
				t.Fatal("New succeeded")
			}
			mustBadInput(t, err, tt.wantErr, tt.wantMsg)
			if _, err := os.Stat(cfg.Spool); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("spool %s was created (stat: %v)", cfg.Spool, err)
			}
		})
	}
}

func mustBadInput(t *testing.T, err, want error, msg string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("error %q is not %v", err, want)
	}
	if diff := cmp.Diff(msg, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message is more than one line: %q", err)
	}
}

// TestCredentialSources finds credentials and the endpoint in the
// standard AWS environment and in a shared credentials file, and says so
// when there are none.
func TestCredentialSources(t *testing.T) {
	srv := mustServer(t, miniotest.Options{})
	home := t.TempDir()
	credFile := filepath.Join(home, "credentials")
	mustWrite(t, credFile, []byte(fmt.Sprintf("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[ringtap]\naws_access_key_id = %s\naws_secret_access_key = %s\n", miniotest.User, miniotest.Password)))
	clean := func(t *testing.T) {
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
			"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"} {
			t.Setenv(k, "")
		}
		t.Setenv("HOME", home)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "none"))
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "none"))
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
	}{
		{name: "environment", env: map[string]string{
			"AWS_ACCESS_KEY_ID": miniotest.User, "AWS_SECRET_ACCESS_KEY": miniotest.Password,
			"AWS_ENDPOINT_URL": srv.Endpoint, "AWS_REGION": "us-east-1"}},
		{name: "shared file and profile", env: map[string]string{
			"AWS_SHARED_CREDENTIALS_FILE": credFile, "AWS_PROFILE": "ringtap", "AWS_ENDPOINT_URL_S3": srv.Endpoint}},
		{name: "shared file default profile is wrong", env: map[string]string{
			"AWS_SHARED_CREDENTIALS_FILE": credFile, "AWS_ENDPOINT_URL": srv.Endpoint}, wantErr: ErrCredentials},
		{name: "none", env: map[string]string{"AWS_ENDPOINT_URL": srv.Endpoint}, wantErr: ErrCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clean(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := testConfig(t, srv)
			cfg.Endpoint, cfg.AccessKeyID, cfg.SecretAccessKey = "", "", ""
			cfg.Prefix = "creds/" + strings.ReplaceAll(tt.name, " ", "-") + "/"
			x, err := New(cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				t.Log(err)
				return
			}
			defer x.Close()
			f := mustFile(t, t.TempDir(), "a.pcapng", 100, 1)
			mustEnqueue(t, x, f)
			mustDrain(t, x)
			if got := x.Stats().Uploads; got != 1 {
				t.Errorf("uploads = %d, want 1", got)
			}
		})
	}
}
