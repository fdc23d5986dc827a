package jobrunner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// maxAnswer bounds the body read from the console.
const maxAnswer = 1 << 20

// APIError is a non-2xx answer of the console.
type APIError struct {
	Method, Path string
	StatusCode   int
	Message      string
	Header       http.Header
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: console answered %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// statusOf is the HTTP status of an *APIError in err, 0 for none.
func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// retryable says whether err is worth another attempt: anything but an
// answer of the console that says no (4xx other than 408 and 429).
func retryable(err error) bool {
	if err == nil {
		return false
	}
	code := statusOf(err)
	return code == 0 || code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// request is one call of the agent API.
type request struct {
	method, path string
	// in is encoded as the JSON body when not nil.
	in any
	// body and length are a raw body instead (PATCH).
	body   io.Reader
	length int64
	header http.Header
	// out decodes a 200's JSON body when not nil.
	out any
	// timeout bounds the call; 0 is none (the live push).
	timeout time.Duration
}

// do makes one call. A non-2xx answer is an *APIError.
func (r *Runner) do(ctx context.Context, q request) (*http.Response, error) {
	if q.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.timeout)
		defer cancel()
	}
	body := q.body
	if q.in != nil {
		raw, err := json.Marshal(q.in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode: %w", q.method, q.path, err)
		}
		body, q.length = bytes.NewReader(raw), int64(len(raw))
	}
	u := *r.base
	u.Path += q.path
	req, err := http.NewRequestWithContext(ctx, q.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil && q.length >= 0 {
		req.ContentLength = q.length
	}
	for k, v := range q.header {
		req.Header[k] = v
	}
	if q.in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", q.method, q.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp, fmt.Errorf("%s %s: read the answer: %w", q.method, q.path, err)
	}
	if resp.StatusCode/100 != 2 {
		var er struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &er) == nil && er.Error != "" {
			msg = er.Error
		} else if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return resp, &APIError{Method: q.method, Path: q.path, StatusCode: resp.StatusCode, Message: msg, Header: resp.Header}
	}
	if q.out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, q.out); err != nil {
			// Not the answer of an agent API: as a 5xx, worth a retry.
			return resp, &APIError{Method: q.method, Path: q.path, StatusCode: http.StatusBadGateway,
				Message: fmt.Sprintf("the answer is not JSON of the agent API: %v", err)}
		}
	}
	return resp, nil
}

// retry calls f until it succeeds, fails for good (not retryable) or
// ctx ends, waiting a backoff with jitter between attempts. what names
// the call in the log: the first failure is a warning, the next ones
// debug but every tenth.
func (r *Runner) retry(ctx context.Context, log *slog.Logger, what string, f func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		err := f(ctx)
		if err == nil || !retryable(err) {
			if err == nil && n > 1 {
				log.Info(what+": the console answers again", "attempts", n)
			}
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		d := r.backoff(n)
		lv := slog.LevelDebug
		if n == 1 || n%10 == 0 {
			lv = slog.LevelWarn
		}
		log.Log(ctx, lv, what+" failed: retrying", "error", oneLine(err), "attempts", n, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return err
		}
	}
}

// backoff is BackoffMin·2^(n-1) capped at BackoffMax, less up to a
// fifth at random.
func (r *Runner) backoff(n int) time.Duration {
	d := r.opts.BackoffMin
	for i := 1; i < n && d < r.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.opts.BackoffMax)
	return d - time.Duration(r.opts.Jitter()*0.2*float64(d))
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
