package poller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/goccy/go-yaml"

	"github.com/ringtap/ringtap/pkg/agent/config"
)

// ErrBadConfig wraps every reason a config from the console is not
// applied: an answer that is not a config, or captures the agent's
// config parser rejects.
var ErrBadConfig = errors.New("config from the console rejected")

// ParseConfig checks the console's captures as the agent's config file:
// the local file base (YAML, may be empty) with its captures replaced by
// captures (a JSON list), parsed by config.Parse with WithoutCaptures
// (the console may ask for none) and the file system checks of
// Config.Check. source names the config in messages. Every mistake is
// returned, one per line, as config names them (captures[0].filter: ...).
func ParseConfig(base []byte, captures json.RawMessage, source string, opts ...config.Option) (*config.Config, error) {
	trimmed := bytes.TrimSpace(captures)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, fmt.Errorf("%w: %s: captures: want a list", ErrBadConfig, source)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(trimmed, &list); err != nil {
		return nil, fmt.Errorf("%w: %s: captures: %w", ErrBadConfig, source, err)
	}
	doc := map[string]any{}
	if len(bytes.TrimSpace(base)) > 0 {
		if err := yaml.Unmarshal(base, &doc); err != nil {
			return nil, fmt.Errorf("%w: %s: the local config: %w", ErrBadConfig, source, err)
		}
		if doc == nil {
			doc = map[string]any{}
		}
	}
	doc["captures"] = list
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, source, err)
	}
	opts = append(opts, config.WithoutCaptures())
	cfg, err := config.Parse(data, source, opts...)
	if err == nil {
		err = cfg.Check()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if err := RemoteSafe(cfg.Captures, source); err != nil {
		return nil, err
	}
	return cfg, nil
}

// RemoteSafe refuses what a config from the console must not do
// (config.RemoteProblems: run a command on the sensor).
func RemoteSafe(caps []config.Capture, source string) error {
	if p := config.RemoteProblems(caps); len(p) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrBadConfig, source, p[0])
	}
	return nil
}
