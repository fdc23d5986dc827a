package storage

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the suffixes ParseSize accepts, case-insensitively.
// Single letters are binary, as in tcpdump's -C and most Unix tools.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}

// ParseSize parses a byte count: a number, optionally with a fraction,
// and an optional unit: B, KB, MB, GB, TB (powers of 1000), KiB, MiB,
// GiB, TiB (powers of 1024) or K, M, G, T (also powers of 1024, as
// tcpdump's -C takes them). Units are case-insensitive and may follow a
// space. The result is rounded to whole bytes.
func ParseSize(s string) (int64, error) {
	num, unit := splitNumber(strings.TrimSpace(s))
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(unit))]
	if num == "" || !ok {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit such as KB, MB, GB, KiB, MiB or GiB", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || r.Sign() < 0 {
		return 0, fmt.Errorf("size %q: %q is not a non-negative number", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	// Round half up to whole bytes.
	q := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Mul(r.Num(), big.NewInt(2)), r.Denom()), new(big.Int).Mul(r.Denom(), big.NewInt(2)))
	if !q.IsInt64() {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return q.Int64(), nil
}

// splitNumber splits s into its leading decimal number and the rest.
func splitNumber(s string) (num, rest string) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

// Space is an amount of disk space: a number of bytes, or a percentage
// of the file system's size.
type Space struct {
	Bytes   int64
	Percent float64 // 0 < Percent < 100 when set; Bytes is then 0
}

// IsZero says whether no amount is set.
func (s Space) IsZero() bool { return s.Bytes == 0 && s.Percent == 0 }

// String formats s as ParseSpace accepts it.
func (s Space) String() string {
	if s.Percent != 0 {
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(s.Bytes, 10)
}

// Of is the amount in bytes on a file system of total bytes.
func (s Space) Of(total int64) int64 {
	if s.Percent != 0 {
		return int64(math.Ceil(float64(total) * s.Percent / 100))
	}
	return s.Bytes
}

// ParseSpace parses a percentage ("10%") or a size as ParseSize does
// ("5GB").
func ParseSpace(s string) (Space, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || v <= 0 || v >= 100 {
			return Space{}, fmt.Errorf("space %q: a percentage must be above 0 and below 100", s)
		}
		return Space{Percent: v}, nil
	}
	n, err := ParseSize(t)
	if err != nil {
		return Space{}, fmt.Errorf("space %q: want a percentage such as 10%% or a size such as 5GB", s)
	}
	return Space{Bytes: n}, nil
}

// ParseDuration parses a Go duration ("90m", "1h30m") that may also use
// days ("30d", "1d12h"). A bare number is seconds, as tcpdump's -G takes
// it.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty duration")
	}
	if n, err := strconv.ParseUint(t, 10, 63); err == nil {
		if n > uint64(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	var days time.Duration
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		n, err := strconv.ParseUint(t[:i], 10, 31)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want a number of days before d, as in 30d", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		t = t[i+1:]
		if t == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want seconds, or a duration such as 90s, 15m, 6h or 30d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	if days > 0 && d > math.MaxInt64-days {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return days + d, nil
}
