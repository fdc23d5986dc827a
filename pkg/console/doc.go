// Package console is the ringtap console's HTTP server: the agent API
// (mTLS) and the admin API with the web page (HTTPS, bearer token), on two
// listeners, over one store.Store.
//
// What it promises:
//
//   - Every agent endpoint but enrollment requires a client certificate
//     that the console's CA signed, that is in its validity period (also
//     on a kept-alive connection), and whose device is not revoked (403).
//     The device an agent request acts on is the one its certificate
//     names, never one from the URL or the body: there is no agent URL
//     that names a device, so a device can only read its own desired
//     config and write its own status.
//   - Every admin endpoint requires `Authorization: Bearer <admin token>`
//     (401 without, or with a token the store does not know). Tokens are
//     created, listed and deleted through /api/v1/admin-tokens; a deleted
//     token is refused from the next request on, and the store never
//     deletes its last token (409), even with two deletes at once.
//   - Request bodies are JSON objects of at most MaxBodySize bytes (413
//     above), with no unknown fields and nothing after the object (400).
//     A refused request changes nothing in the store.
//   - Enrollment consumes an install key once, atomically: a retry with
//     the same CSR public key within store.EnrollRetryWindow gets the
//     same device and certificate back; any other reuse is refused (403).
//   - A desired config is accepted only if the agent's own config
//     checker (pkg/agent/config.Parse, the same filter compiler) accepts
//     it; its messages come back in a 422. Every change bumps the
//     generation; a PUT names the generation it read (If-Match) and gets
//     409 when another change came first.
//   - A long-polling agent (GET /api/v1/agent/config?after=N) is answered
//     within a second of a change made through any console on the same
//     database (store.WaitForChange), or with 304 when its wait ends.
//
// Server.Run serves until its context ends, then stops gracefully: long
// polls are ended at once, other requests get a few seconds to finish.
package console
