package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response of Handler: only the
// console's own scripts, styles and images, fetch only to the console, no
// inline script or style, no plugins, no framing, no form posts elsewhere.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// assetPrefix is where the files other than index.html are served, followed
// by a version that changes with their content, so they can be cached for
// good: a new build has a new version, and index.html names it.
const assetPrefix = "/assets/"

// Handler serves the console's web page: index.html at /, and its scripts,
// styles and icon under /assets/VERSION/, where VERSION is derived from the
// content of every file. index.html is revalidated on each load; the assets
// are immutable. Only GET and HEAD are answered. Every response carries
// ContentSecurityPolicy and headers that keep the page out of frames and its
// address out of Referer headers.
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		panic(err) // the embedded files are fixed at build time; the tests load them
	}
	return h
}

type handler struct {
	index   []byte
	version string
	files   map[string]asset // by name below static/, such as "app.js"
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{files: map[string]asset{}}
	sum := sha256.New()
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		fileSum := sha256.Sum256(b)
		sum.Write([]byte(name))
		sum.Write(fileSum[:])
		h.files[name] = asset{body: b, contentType: contentType(name), etag: `"` + hex.EncodeToString(fileSum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.version = hex.EncodeToString(sum.Sum(nil)[:6])
	idx, ok := h.files["index.html"]
	if !ok {
		return nil, fs.ErrNotExist
	}
	// index.html names its assets as /assets/NAME; point them at this version.
	h.index = bytes.ReplaceAll(idx.body, []byte(`"`+assetPrefix), []byte(`"`+assetPrefix+h.version+"/"))
	delete(h.files, "index.html")
	return h, nil
}

// contentType is the type of an embedded file by its extension; the table is
// fixed so the host's mime.types cannot change it.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/" || p == "/index.html":
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", "no-cache")
		w.Write(h.index)
	case strings.HasPrefix(p, assetPrefix):
		version, name, ok := strings.Cut(strings.TrimPrefix(p, assetPrefix), "/")
		a, found := h.files[name]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		hdr.Set("Content-Type", a.contentType)
		hdr.Set("ETag", a.etag)
		if version == h.version {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			// A page from an older build asks for its version: give it
			// this one, but let it not stick.
			hdr.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	case p == "/favicon.ico":
		http.Redirect(w, r, assetPrefix+h.version+"/favicon.svg", http.StatusMovedPermanently)
	default:
		http.NotFound(w, r)
	}
}
