package export

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newHash(c Checksum) hash.Hash {
	switch c {
	case ChecksumMD5:
		return md5.New()
	case ChecksumCRC32C:
		return crc32.New(castagnoli)
	case ChecksumSHA256:
		return sha256.New()
	}
	return nil
}

// checksumHeader is the x-amz-checksum header of c; "" for md5 (which
// travels as Content-MD5) and none.
func checksumHeader(c Checksum) string {
	switch c {
	case ChecksumCRC32C:
		return "X-Amz-Checksum-Crc32c"
	case ChecksumSHA256:
		return "X-Amz-Checksum-Sha256"
	}
	return ""
}

// checksumAlgorithm is the x-amz-checksum-algorithm of c.
func checksumAlgorithm(c Checksum) string {
	switch c {
	case ChecksumCRC32C:
		return "CRC32C"
	case ChecksumSHA256:
		return "SHA256"
	}
	return ""
}

// digest is what a file's upload sends and what the store must report
// afterwards: one checksum per part (a single PUT is one part).
type digest struct {
	mode     Checksum
	size     int64
	partSize int64
	parts    [][]byte // raw checksum per part; nil for none
}

func (d *digest) nparts() int {
	if d.size <= d.partSize {
		return 1
	}
	return int((d.size + d.partSize - 1) / d.partSize)
}

func (d *digest) multipart() bool { return d.size > d.partSize }

// part is part i's (from 1) offset and length.
func (d *digest) part(i int) (off, n int64) {
	if !d.multipart() {
		return 0, d.size
	}
	off = int64(i-1) * d.partSize
	return off, min(d.partSize, d.size-off)
}

// computeDigest reads the file once, part by part.
func computeDigest(r io.ReaderAt, size, partSize int64, mode Checksum) (*digest, error) {
	d := &digest{mode: mode, size: size, partSize: partSize}
	h := newHash(mode)
	if h == nil {
		return d, nil
	}
	buf := make([]byte, 1<<20)
	for i := 1; i <= d.nparts(); i++ {
		off, n := d.part(i)
		h.Reset()
		got, err := io.CopyBuffer(h, io.NewSectionReader(r, off, n), buf)
		if err != nil {
			return nil, fmt.Errorf("read part %d: %w", i, err)
		}
		if got != n {
			return nil, fmt.Errorf("read part %d: %d of %d bytes (file shrank)", i, got, n)
		}
		d.parts = append(d.parts, h.Sum(nil))
	}
	return d, nil
}

// partContentMD5 and partHeader are what part i's request carries.
func (d *digest) partContentMD5(i int) string {
	if d.mode != ChecksumMD5 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(d.parts[i-1])
}

func (d *digest) partChecksum(i int) string {
	if checksumHeader(d.mode) == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString(d.parts[i-1])
}

func (d *digest) partHeader(i int) http.Header {
	h := checksumHeader(d.mode)
	if h == "" {
		return nil
	}
	return http.Header{h: {d.partChecksum(i)}}
}

// expected is what the store reports for the whole object: the ETag for
// md5, the x-amz-checksum value for crc32c and sha256 (for a multipart
// upload the checksum of the parts' checksums followed by "-N", as S3's
// composite checksums and multipart ETags are), "" for none.
func (d *digest) expected() string {
	if d.mode == ChecksumNone {
		return ""
	}
	sum := d.parts[0]
	if d.multipart() {
		h := newHash(d.mode)
		for _, p := range d.parts {
			h.Write(p)
		}
		sum = h.Sum(nil)
	}
	var s string
	if d.mode == ChecksumMD5 {
		s = hex.EncodeToString(sum)
	} else {
		s = base64.StdEncoding.EncodeToString(sum)
	}
	if d.multipart() {
		s += "-" + strconv.Itoa(len(d.parts))
	}
	return s
}

// observed is what the store reports about an object.
type observed struct {
	Size     int64
	ETag     string
	Checksum string // x-amz-checksum of the digest's mode
}

// mismatchError: the object in the store is not the local file.
type mismatchError struct{ what, want, got string }

func (e *mismatchError) Error() string {
	if e.got == "" && (e.what == string(ChecksumCRC32C) || e.what == string(ChecksumSHA256)) {
		return fmt.Sprintf("checksum mismatch: the store reported no %s (want %s); if it does not support x-amz-checksum headers, use checksum md5", e.what, e.want)
	}
	return fmt.Sprintf("checksum mismatch: the store reported %s %s, want %s", e.what, e.got, e.want)
}

// check compares what the store reports with the local file.
func (d *digest) check(o observed) error {
	if o.Size != d.size {
		return &mismatchError{what: "size", want: strconv.FormatInt(d.size, 10), got: strconv.FormatInt(o.Size, 10)}
	}
	switch d.mode {
	case ChecksumMD5:
		got := strings.ToLower(strings.Trim(o.ETag, `"`))
		if want := d.expected(); got != want {
			return &mismatchError{what: "ETag", want: want, got: got}
		}
	case ChecksumCRC32C, ChecksumSHA256:
		got := strings.TrimSpace(o.Checksum)
		if want := d.expected(); got != want {
			return &mismatchError{what: string(d.mode), want: want, got: got}
		}
	}
	return nil
}
