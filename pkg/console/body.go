package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBodySize bounds every request body the console reads.
const MaxBodySize = 1 << 20

// errorBody is the body of every non-2xx answer of both APIs (the agent
// API's is certmgr.ErrorResponse, the same shape). Errors lists the
// problems of a refused desired config, one sentence each.
type errorBody struct {
	Error  string   `json:"error"`
	Errors []string `json:"errors,omitempty"`
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"internal error: cannot encode the answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers code with {"error": msg}.
func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

// readBody reads r's body, at most MaxBodySize bytes. On failure it has
// answered (413 or 400) and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodySize)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "read request body: %v", err)
		return nil, false
	}
	return b, true
}

// decodeStrict decodes one JSON object from b into dst: unknown fields
// and anything after the object are errors.
func decodeStrict(b []byte, dst any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("the request body is empty: send a JSON object")
	}
	if bytes.TrimSpace(b)[0] != '{' {
		return errors.New("malformed JSON: the body is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: data after the object")
	}
	return nil
}

// readJSON reads and strictly decodes r's body into dst. On failure it
// has answered (413 or 400) and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) ([]byte, bool) {
	b, ok := readBody(w, r)
	if !ok {
		return nil, false
	}
	if err := decodeStrict(b, dst); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return nil, false
	}
	return b, true
}
