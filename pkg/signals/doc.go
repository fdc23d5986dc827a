// Package signals implements the two-step stop: the first SIGINT or SIGTERM
// cancels a context so work finishes gracefully (files flushed and
// completed); the second calls the hard-stop function at once.
package signals
