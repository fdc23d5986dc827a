package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func mustGet(t *testing.T, h http.Handler, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestHandler(t *testing.T) {
	h := Handler()
	_, index := mustGet(t, h, "GET", "/")
	v := regexp.MustCompile(`/assets/([0-9a-f]{12})/app\.js`).FindStringSubmatch(index)
	if v == nil {
		t.Fatalf("index.html names no versioned app.js:\n%s", index)
	}
	version := v[1]
	for _, tc := range []struct {
		name, method, path string
		code               int
		contentType, cache string
	}{
		{"index", "GET", "/", 200, "text/html; charset=utf-8", "no-cache"},
		{"index by name", "GET", "/index.html", 200, "text/html; charset=utf-8", "no-cache"},
		{"head", "HEAD", "/", 200, "text/html; charset=utf-8", "no-cache"},
		{"script", "GET", "/assets/" + version + "/app.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"module", "GET", "/assets/" + version + "/api.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"style", "GET", "/assets/" + version + "/app.css", 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"icon", "GET", "/assets/" + version + "/favicon.svg", 200, "image/svg+xml", "public, max-age=31536000, immutable"},
		{"older version", "GET", "/assets/0123456789ab/app.js", 200, "text/javascript; charset=utf-8", "no-cache"},
		{"unknown asset", "GET", "/assets/" + version + "/nope.js", 404, "", ""},
		{"index is no asset", "GET", "/assets/" + version + "/index.html", 404, "", ""},
		{"unversioned", "GET", "/assets/app.js", 404, "", ""},
		{"other path", "GET", "/devices", 404, "", ""},
		{"post", "POST", "/", 405, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := mustGet(t, h, tc.method, tc.path)
			if res.StatusCode != tc.code {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.code)
			}
			if got := res.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("CSP %q, want %q", got, ContentSecurityPolicy)
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			if tc.code != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
		})
	}

	t.Run("revalidation", func(t *testing.T) {
		res, _ := mustGet(t, h, "GET", "/assets/"+version+"/app.css")
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag on an asset")
		}
		res, _ = mustGet(t, h, "GET", "/assets/"+version+"/app.css", "If-None-Match", etag)
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match with the ETag: %d, want 304", res.StatusCode)
		}
	})
}

// TestStaticFiles checks what the CSP promises by reading the files: no
// inline script, style or handler, nothing loaded from another origin,
// no HTML built from strings, and every asset index.html names exists.
func TestStaticFiles(t *testing.T) {
	h, err := newHandler(static)
	if err != nil {
		t.Fatal(err)
	}
	index := string(h.index)
	for _, m := range regexp.MustCompile(`<script\b[^>]*>`).FindAllString(index, -1) {
		if !strings.Contains(m, `src="/assets/`) {
			t.Errorf("index.html has an inline script: %s", m)
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<style\b`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(src|href)="(https?:)?//`),
	} {
		if m := bad.FindString(index); m != "" {
			t.Errorf("index.html has %q, which the CSP forbids or which loads from elsewhere", m)
		}
	}
	for _, m := range regexp.MustCompile(`"/assets/[0-9a-f]+/([^"]+)"`).FindAllStringSubmatch(index, -1) {
		if _, ok := h.files[m[1]]; !ok {
			t.Errorf("index.html names %s, which is not embedded", m[1])
		}
	}
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := fs.ReadFile(static, p)
		src := string(b)
		for _, bad := range []string{".innerHTML =", ".outerHTML =", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage", "document.cookie", "http://", "https://"} {
			if strings.Contains(src, bad) {
				t.Errorf("%s uses %q", p, bad)
			}
		}
		for _, m := range regexp.MustCompile(`from "\./([^"]+)"`).FindAllStringSubmatch(src, -1) {
			if _, ok := h.files[m[1]]; !ok {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
