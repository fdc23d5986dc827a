package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

type tokenList struct {
	AdminTokens []adminTokenView `json:"admin_tokens"`
}

// mustTokens lists the admin tokens as token sees them.
func (c *testConsole) mustTokens(token string) []adminTokenView {
	c.t.Helper()
	code, body := c.doToken(token, "GET", "/api/v1/admin-tokens", nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET /api/v1/admin-tokens: %d %s", code, body)
	}
	var l tokenList
	if err := json.Unmarshal(body, &l); err != nil {
		c.t.Fatalf("GET /api/v1/admin-tokens: %v in %s", err, body)
	}
	return l.AdminTokens
}

// mustWorks checks that token gets code from the device list.
func (c *testConsole) mustWorks(token string, code int, what string) {
	c.t.Helper()
	if got, body := c.doToken(token, "GET", "/api/v1/devices", nil); got != code {
		c.t.Errorf("%s: GET /api/v1/devices %d %s, want %d", what, got, body, code)
	}
}

// A token is rotated through the API: a new one is created, the old one
// deleted with it; the old one is refused from then on, the last one can
// never be deleted, and every refused request leaves the store as it was.
func TestAdminTokenRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := mustConsole(t, b.open(t), nil)
		first := c.token
		l := c.mustTokens(first)
		if len(l) != 1 || l[0].Name != "test" || !l[0].Current || !tokenIDPattern.MatchString(l[0].ID) {
			t.Fatalf("tokens of a new console: %+v", l)
		}
		firstID := l[0].ID

		for _, tc := range []struct {
			name, body, want string
		}{
			{"no name", `{}`, "give the token a name"},
			{"blank name", `{"name":"  "}`, "give the token a name"},
			{"long name", `{"name":"` + strings.Repeat("x", 65) + `"}`, "at most 64 bytes"},
			{"control character", `{"name":"a\u0007b"}`, "printable characters only"},
			{"unknown field", `{"name":"ci","admin":true}`, "admin"},
			{"malformed", `{"name":`, ""},
			{"empty body", ``, ""},
		} {
			before := mustSnapshot(t, c.st)
			code, body := c.do("POST", "/api/v1/admin-tokens", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: %d %s, want 400 saying %q", tc.name, code, body, tc.want)
			}
			mustUnchanged(t, c.st, before)
		}

		var created adminTokenResponse
		c.mustDo(http.StatusCreated, "POST", "/api/v1/admin-tokens", map[string]string{"name": "  ci "}, &created) // stored trimmed
		if !strings.HasPrefix(created.Token, "rta_") || created.Name != "ci" || created.Current || !tokenIDPattern.MatchString(created.ID) || created.CreatedAt.IsZero() {
			t.Fatalf("created %+v", created)
		}
		second := created.Token
		c.mustWorks(second, http.StatusOK, "the new token")
		l = c.mustTokens(second)
		if len(l) != 2 || l[0].ID != firstID || l[0].Current || l[1].ID != created.ID || !l[1].Current || l[1].Name != "ci" {
			t.Errorf("tokens as the new one sees them: %+v", l)
		}
		if strings.Contains(mustJSONString(t, l), second) {
			t.Error("the list shows a token")
		}

		for _, tc := range []struct {
			id   string
			code int
		}{
			{"xyz", http.StatusBadRequest},
			{strings.ToUpper(firstID), http.StatusBadRequest},
			{"000000000000", http.StatusNotFound},
		} {
			before := mustSnapshot(t, c.st)
			if code, body := c.doToken(second, "DELETE", "/api/v1/admin-tokens/"+tc.id, nil); code != tc.code {
				t.Errorf("DELETE %s: %d %s, want %d", tc.id, code, body, tc.code)
			}
			mustUnchanged(t, c.st, before)
		}

		// The old token goes; it is refused from the next request on.
		if code, body := c.doToken(second, "DELETE", "/api/v1/admin-tokens/"+firstID, nil); code != http.StatusNoContent {
			t.Fatalf("delete the first token: %d %s", code, body)
		}
		c.mustWorks(first, http.StatusUnauthorized, "the deleted token")
		c.mustWorks(second, http.StatusOK, "the remaining token")
		if code, _ := c.doToken(second, "DELETE", "/api/v1/admin-tokens/"+firstID, nil); code != http.StatusNotFound {
			t.Errorf("delete the first token again: %d, want 404", code)
		}

		// The last token stays.
		before := mustSnapshot(t, c.st)
		code, body := c.doToken(second, "DELETE", "/api/v1/admin-tokens/"+created.ID, nil)
		if code != http.StatusConflict || !strings.Contains(string(body), "create another first") {
			t.Errorf("delete the last token: %d %s, want 409", code, body)
		}
		mustUnchanged(t, c.st, before)
		c.mustWorks(second, http.StatusOK, "the last token after its refused delete")

		// A token may delete itself while another remains.
		code, body = c.doToken(second, "POST", "/api/v1/admin-tokens", `{"name":"ops"}`)
		var third adminTokenResponse
		if code != http.StatusCreated || json.Unmarshal(body, &third) != nil {
			t.Fatalf("create a third token: %d %s", code, body)
		}
		if code, body := c.doToken(second, "DELETE", "/api/v1/admin-tokens/"+created.ID, nil); code != http.StatusNoContent {
			t.Fatalf("a token deleting itself: %d %s", code, body)
		}
		c.mustWorks(second, http.StatusUnauthorized, "the token that deleted itself")
		c.mustWorks(third.Token, http.StatusOK, "the third token")
		if l := c.mustTokens(third.Token); len(l) != 1 || l[0].Name != "ops" || !l[0].Current {
			t.Errorf("tokens at the end: %+v", l)
		}
	})
}

func mustJSONString(t *testing.T, v any) string { return string(mustJSON(t, v)) }
