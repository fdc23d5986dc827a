package console

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// maxTokenNameLen bounds an admin token's name.
const maxTokenNameLen = 64

// adminTokenRequest is the body of POST /api/v1/admin-tokens.
type adminTokenRequest struct {
	Name string `json:"name"`
}

// adminTokenView is a token in the list: the start of its hash, never the
// token. Current marks the token of the request.
type adminTokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Current   bool      `json:"current"`
}

// adminTokenResponse is the 201 answer: the token is shown this once.
type adminTokenResponse struct {
	adminTokenView
	Token string `json:"token"`
}

// tokenIDPattern is what store.Hash.ID gives: 12 lowercase hex digits.
var tokenIDPattern = regexp.MustCompile(`^[0-9a-f]{12}$`)

// ValidTokenName reports why name cannot name an admin token, or nil.
func ValidTokenName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("name: give the token a name, such as who or what will use it (\"ci\", \"alice\")")
	case len(name) > maxTokenNameLen:
		return errors.New("name: at most 64 bytes")
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return errors.New("name: printable characters only")
	}
	return nil
}

func (s *Server) createAdminToken(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req adminTokenRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if err := ValidTokenName(req.Name); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	token, _ := pki.NewAdminToken()
	t := store.AdminToken{Hash: store.HashSecret(token), Name: req.Name, CreatedAt: s.now()}
	if err := s.cfg.Store.CreateAdminToken(r.Context(), t); err != nil {
		s.log.Error("create admin token", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the console cannot store the token now: try again")
		return
	}
	s.log.Info("admin token created", "id", t.Hash.ID(), "name", t.Name, "by", callerToken(r).ID())
	writeJSON(w, http.StatusCreated, adminTokenResponse{
		adminTokenView: adminTokenView{ID: t.Hash.ID(), Name: t.Name, CreatedAt: t.CreatedAt.UTC()},
		Token:          token,
	})
}

func (s *Server) listAdminTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.cfg.Store.ListAdminTokens(r.Context())
	if err != nil {
		s.storeError(w, "list admin tokens", err)
		return
	}
	me := callerToken(r)
	out := make([]adminTokenView, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, adminTokenView{ID: t.Hash.ID(), Name: t.Name, CreatedAt: t.CreatedAt.UTC(), Current: t.Hash == me})
	}
	writeJSON(w, http.StatusOK, map[string]any{"admin_tokens": out})
}

// deleteAdminToken revokes a token by its id. The caller may delete its
// own token (the last step of a rotation), but never the last one.
func (s *Server) deleteAdminToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !tokenIDPattern.MatchString(id) {
		writeError(w, http.StatusBadRequest, "admin token id %q: give the 12 hex digits GET /api/v1/admin-tokens lists", id)
		return
	}
	tokens, err := s.cfg.Store.ListAdminTokens(r.Context())
	if err != nil {
		s.storeError(w, "list admin tokens", err)
		return
	}
	match := store.TokensWithID(tokens, id)
	switch len(match) {
	case 0:
		writeError(w, http.StatusNotFound, "no admin token has id %s: GET /api/v1/admin-tokens lists them", id)
		return
	case 1:
	default: // 48 bits of two SHA-256 hashes alike: refuse rather than guess
		writeError(w, http.StatusConflict, "%d admin tokens share id %s, so it cannot tell which to delete: nothing was deleted", len(match), id)
		return
	}
	t := match[0]
	err = s.cfg.Store.DeleteAdminToken(r.Context(), t.Hash)
	switch {
	case errors.Is(err, store.ErrLastToken):
		writeError(w, http.StatusConflict, "admin token %s (%s) is the last one: create another first (POST /api/v1/admin-tokens), then delete this one", id, t.Name)
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no admin token has id %s: it was deleted already", id)
		return
	case err != nil:
		s.storeError(w, "delete admin token "+id, err)
		return
	}
	s.log.Info("admin token deleted", "id", id, "name", t.Name, "by", callerToken(r).ID())
	w.WriteHeader(http.StatusNoContent)
}
