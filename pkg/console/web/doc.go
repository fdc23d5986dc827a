// Package web is the console's web page: plain HTML, CSS and JavaScript
// modules embedded in the binary, with no build step and nothing fetched
// from anywhere but the console itself.
//
// Handler serves it. The console mounts it at / on the admin listener, next
// to the admin API under /api/v1/, so the page and the API share one origin.
//
// # What the page does
//
//   - It asks for the admin token once, checks it with GET /api/v1/devices,
//     and keeps it for the tab. "Sign out" forgets it; any 401 from the API
//     forgets it too and brings the prompt back with the console's sentence.
//   - Devices: every sensor's state (online, stale, revoked), the errors
//     its agent reports (a badge with their count, the first as its title),
//     a certificate that needs re-enrollment, captures running against
//     configured (and which do not run), drops in the last heartbeat, the
//     time since it, agent version, certificate expiry, and a badge for
//     devices that share a machine id. What the list does not carry (the
//     errors' text, needs_reenroll, each capture's state) comes from the
//     device's status, fetched again only when its last_heartbeat changes,
//     four at a time. It refreshes every 5 s, in place: rows are updated
//     cell by cell, so nothing flickers and focus and selection survive.
//   - A device (#/devices/ID): its facts (interfaces, certificate, applied
//     generation), the errors the agent reports, what to do when its
//     certificate needs re-enrollment, and its captures with the state and
//     counters of the last heartbeat (drops: the status's "dropped", or
//     ring drops, copy failures and write drops). Add, edit and delete PUT
//     the whole list with If-Match: the generation read. A 422's messages
//     ("captures[0].filter: ...") appear under the field they name; a 409
//     offers to reload and keeps the edit in the form. After a change the
//     page refreshes every second (for a minute at most) until the agent
//     reports the new generation and every capture, so a new capture is
//     seen starting. Revoke asks first.
//   - Install keys: a dialog creates one (expiry, note) and shows the
//     console's enrollment command with a copy button. The command wraps
//     between words only, each flag with its value starting a line, so no
//     flag, key or fingerprint is split.
//   - At 1024 px (a laptop) every column, whole filters (wrapped between
//     words) and the refresh state still show.
//   - Jobs (#/jobs): every capture job, newest first, with the state of its
//     runs and what they captured. New job (#/jobs/new, also from a device's
//     page and as "Run again" of a job) picks devices (online first, each
//     with the interfaces it reports), interfaces (suggested from the
//     devices picked, with a warning for one a device lacks), a filter, the
//     stop conditions, the expiry and the destination. The console decides:
//     its 400 sentence appears under the field it is about (or next to Start)
//     and the form keeps what was typed.
//   - A job (#/jobs/ID) refreshes every second while a run is live, in
//     place and with fixed columns, so nothing moves: each run's state,
//     packets, bytes, drops and file size, the time of every transition,
//     the reason of a failure, Cancel (asked first; a 409 shows in the
//     banner), a Download of each result (or, for one the console deleted
//     since, "deleted" and the console's reason), and for a running run
//     the curl | wireshark command of its live stream, to copy.
//   - Admin tokens (#/tokens): each token's name, id and age, the tab's own
//     marked. Create one by name: it is shown once, to copy or to switch
//     the tab to ("Use in this tab"). Delete asks first; the last token's
//     Delete is disabled with the reason, and deleting the tab's own token
//     signs the tab out with a sentence saying so.
//   - An API error is shown as one sentence in a banner.
//
// # Security
//
//   - The admin token lives only in sessionStorage: not in localStorage, a
//     cookie or the URL. It ends with the tab, and is sent only as an
//     Authorization header to this origin (fetch with credentials "omit").
//     There are no cookies, so there is nothing for another site to ride on
//     (no CSRF).
//   - Every response carries ContentSecurityPolicy: scripts, styles, images
//     and fetches from this origin only; no inline script or style, no eval,
//     no plugins, no framing (also X-Frame-Options: DENY), no <base>
//     rewriting. Referrer-Policy: no-referrer keeps addresses in.
//   - Nothing the console or an agent reports becomes markup: the page
//     builds its DOM with textContent, never innerHTML. The tests check the
//     sources for inline scripts, string-built HTML and third-party URLs.
//   - A job's pcap is fetched with the Authorization header into a Blob and
//     saved through an object URL, revoked afterwards: the token never goes
//     into a URL, and a link to the pcap is of no use to anyone else.
//   - Assets are served under /assets/VERSION/, VERSION derived from their
//     content, and cached as immutable; index.html is revalidated on every
//     load, so a new console build is picked up at once.
//
// # Tests
//
// The tests drive chromium (chromedp) against a fake admin API and against
// the real console with a device that speaks the agent API. Every
// screenshot they take goes to the test's artifact directory, kept under
// DIR with go test -artifacts -outputdir DIR; with -update they are also
// written to testdata/screenshots, where the reviewed ones are kept.
package web
