package export

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with jitter: the n-th consecutive
// failure (from 1) waits a random time in [d/2, d], d = min·2^(n-1)
// capped at max. Half the delay is kept so a retry never comes early by
// much; the other half spreads the retries of many files and agents.
type backoff struct {
	min, max time.Duration
	rand     func() float64 // in [0, 1); nil is math/rand/v2
}

func (b backoff) delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.min
	for i := 1; i < n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	r := rand.Float64
	if b.rand != nil {
		r = b.rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}
