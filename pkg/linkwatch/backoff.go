package linkwatch

import "time"

// backoff doubles a delay from min to max between consecutive failures.
type backoff struct {
	min, max, cur time.Duration
}

// next returns the delay before the next attempt.
func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.min
	case b.cur < b.max:
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

// reset starts over from min.
func (b *backoff) reset() { b.cur = 0 }
