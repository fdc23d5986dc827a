package console

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// configSource names a desired config in the checker's messages.
const configSource = "desired config"

// checkCaptures checks a desired capture list as the agent will: the JSON
// of {"captures": [...]} is a config file (JSON is YAML), read by the
// agent's own config.Parse, so filters are compiled by the same compiler
// and every message is the agent's. It returns one sentence per problem,
// "captures[0].filter: ...", and nil when the list is fine. An empty list
// is fine: the device then runs no capture.
func checkCaptures(caps []store.Capture) []string {
	if len(caps) == 0 {
		return nil
	}
	doc, err := json.Marshal(struct {
		Captures []store.Capture `json:"captures"`
	}{caps})
	if err != nil {
		return []string{fmt.Sprintf("captures: %v", err)}
	}
	cfg, err := config.Parse(doc, configSource)
	if err == nil {
		return config.RemoteProblems(cfg.Captures)
	}
	var msgs []string
	for _, e := range flatten(err) {
		var ce *config.Error
		switch {
		case errors.As(e, &ce) && ce.Path != "":
			msgs = append(msgs, ce.Path+": "+ce.Msg)
		case errors.As(e, &ce):
			msgs = append(msgs, ce.Msg)
		default:
			msgs = append(msgs, e.Error())
		}
	}
	return msgs
}

// flatten returns the errors errors.Join joined in err, or err alone. A
// *config.Error is a leaf (it unwraps to its causes).
func flatten(err error) []error {
	if _, ok := err.(*config.Error); ok {
		return []error{err}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
