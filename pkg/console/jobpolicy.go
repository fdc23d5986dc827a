package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/storage"
)

// Defaults of a JobPolicy (the serve flags' defaults).
const (
	DefaultJobMaxDuration = time.Hour
	DefaultJobMaxBytes    = 1 << 30
	DefaultJobMaxExpiry   = 24 * time.Hour
	DefaultJobSilence     = 2 * time.Minute
)

// Defaults of a job's fields that its request leaves out.
const (
	// DefaultJobDuration is a job's duration when it gives no stop
	// condition at all.
	DefaultJobDuration = 60 * time.Second
	// DefaultJobExpiry is a job's expires_in when it gives none.
	DefaultJobExpiry = 10 * time.Minute
	// DefaultJobSnapLen is a job's snaplen when it gives none.
	DefaultJobSnapLen = capture.DefaultSnapLen
)

// JobPolicy bounds the capture jobs the admin API accepts, and says when
// the console gives up on a silent run. A zero field takes its default,
// except MaxPackets, whose zero is no cap.
type JobPolicy struct {
	// MaxDuration is the longest duration a job may ask for, and the
	// duration of one that gives only a packet or byte limit
	// (DefaultJobMaxDuration).
	MaxDuration time.Duration
	// MaxBytes is the largest result a job may ask for, and the limit of
	// one that asks none (DefaultJobMaxBytes).
	MaxBytes uint64
	// MaxPackets, when not 0, is the most packets a job may ask for, and
	// the limit of one that asks none.
	MaxPackets uint64
	// MaxExpiry is the longest expires_in (DefaultJobMaxExpiry).
	MaxExpiry time.Duration
	// Silence: a run accepted, running or uploading with no word from
	// its device for this long fails (DefaultJobSilence).
	Silence time.Duration
	// Retention: the results of a job stored in the data directory are
	// deleted this long after its last run ended; 0 keeps them forever
	// (the serve flag's default is DefaultJobRetention).
	Retention time.Duration
	// ResultsMaxBytes, when not 0, bounds the results stored in the data
	// directory: past it, the results of the jobs that ended first are
	// deleted until the rest fit.
	ResultsMaxBytes int64
	// ResultsMinFree, when not zero, is the space to keep free on the
	// data directory's file system (which also holds the SQLite
	// database), by deleting results as ResultsMaxBytes does.
	ResultsMinFree storage.Space
}

// DefaultJobResultsMinFree is --job-results-min-free's default.
var DefaultJobResultsMinFree = storage.Space{Percent: 5}

// sweeps says whether any bound on stored results is set.
func (p JobPolicy) sweeps() bool {
	return p.Retention > 0 || p.ResultsMaxBytes > 0 || !p.ResultsMinFree.IsZero()
}

// DefaultJobRetention is --job-retention's default: 30 days.
const DefaultJobRetention = 30 * 24 * time.Hour

// retentionReason is the answer to a download of a result that the
// retention deleted.
func (p JobPolicy) retentionReason(id int64, device string) string {
	return fmt.Sprintf("the pcap of job %d on device %s was deleted %s after the job ended (--job-retention)", id, device, fmtDuration(p.Retention))
}

// withDefaults fills the zero fields.
func (p JobPolicy) withDefaults() JobPolicy {
	if p.MaxDuration <= 0 {
		p.MaxDuration = DefaultJobMaxDuration
	}
	if p.MaxBytes == 0 {
		p.MaxBytes = DefaultJobMaxBytes
	}
	if p.MaxExpiry <= 0 {
		p.MaxExpiry = DefaultJobMaxExpiry
	}
	if p.Silence <= 0 {
		p.Silence = DefaultJobSilence
	}
	return p
}

// silenceReason is the error of a run the console failed for silence.
func (p JobPolicy) silenceReason() string {
	return fmt.Sprintf("the device stopped reporting for %s: the agent stopped or lost the console", p.Silence)
}

// jobLimits are a job request's stop conditions and expiry, as asked (0
// is not asked).
type jobLimits struct {
	Duration   time.Duration
	MaxPackets uint64
	MaxBytes   uint64
	ExpiresIn  time.Duration
}

// apply checks l against the policy and fills what l leaves out: a job
// with no stop condition runs DefaultJobDuration; one with only packet or
// byte limits runs at most MaxDuration; MaxBytes (and MaxPackets, when
// capped) default to the policy's; ExpiresIn to DefaultJobExpiry. The
// message names the flag of the limit a value is above; "" when l is
// fine.
func (p JobPolicy) apply(l jobLimits) (jobLimits, string) {
	switch {
	case l.Duration > p.MaxDuration:
		return l, fmt.Sprintf("duration %s is above the console's limit %s (--job-max-duration): ask for %s or less", fmtDuration(l.Duration), fmtDuration(p.MaxDuration), fmtDuration(p.MaxDuration))
	case l.MaxBytes > p.MaxBytes:
		return l, fmt.Sprintf("max_bytes %s is above the console's limit %s (--job-max-bytes): ask for %d or less", fmtBytes(l.MaxBytes), fmtBytes(p.MaxBytes), p.MaxBytes)
	case p.MaxPackets > 0 && l.MaxPackets > p.MaxPackets:
		return l, fmt.Sprintf("max_packets %d is above the console's limit %d (--job-max-packets): ask for %d or less", l.MaxPackets, p.MaxPackets, p.MaxPackets)
	case l.ExpiresIn > p.MaxExpiry:
		return l, fmt.Sprintf("expires_in %s is above the console's limit %s (--job-max-expiry): ask for %s or less", fmtDuration(l.ExpiresIn), fmtDuration(p.MaxExpiry), fmtDuration(p.MaxExpiry))
	}
	if l.Duration == 0 {
		if l.MaxPackets == 0 && l.MaxBytes == 0 {
			l.Duration = min(DefaultJobDuration, p.MaxDuration)
		} else {
			l.Duration = p.MaxDuration
		}
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = p.MaxBytes
	}
	if l.MaxPackets == 0 {
		l.MaxPackets = p.MaxPackets
	}
	if l.ExpiresIn == 0 {
		l.ExpiresIn = min(DefaultJobExpiry, p.MaxExpiry)
	}
	return l, ""
}

// fmtDuration writes d as a person would: 2h, 90m, 1m30s, 500ms.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// fmtBytes writes n in the largest binary unit that divides it (1GiB),
// else in bytes.
func fmtBytes(n uint64) string {
	for _, u := range []struct {
		name string
		size uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatUint(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10) + " bytes"
}
