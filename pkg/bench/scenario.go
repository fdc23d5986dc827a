package bench

import (
	"fmt"
	"strings"
)

// Scenario is one capture situation.
type Scenario struct {
	Name string
	// Monitor: frames go to a foreign MAC (mirrored traffic); ringtap runs
	// with --monitor-port.
	Monitor bool
	// Hook for ringtap: xdp or tc.
	Hook string
	// Filter is the capture filter; Reject marks a filter no frame
	// matches (the cost of not matching), so nothing should be captured.
	Filter string
	Reject bool
}

// Scenarios are the standard ones, by name.
var Scenarios = []Scenario{
	{Name: "monitor", Monitor: true, Hook: "xdp", Filter: "udp"},
	{Name: "host-xdp", Hook: "xdp", Filter: "udp"},
	{Name: "host-tc", Hook: "tc", Filter: "udp"},
	{Name: "reject", Monitor: true, Hook: "xdp", Filter: "tcp port 9", Reject: true},
	// host-reject: host traffic, nothing matches: what the hook alone
	// (count, filter) costs the host path, against host-xdp.
	{Name: "host-reject", Hook: "xdp", Filter: "tcp port 9", Reject: true},
}

// ParseScenarios picks scenarios by a comma-separated list of names.
func ParseScenarios(list string) ([]Scenario, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, s := range Scenarios {
			if s.Name == strings.TrimSpace(name) {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q: use monitor, host-xdp, host-tc, reject or host-reject", name)
		}
	}
	return out, nil
}

// Variant is ringtap run with another binary, other flags or other
// environment variables.
type Variant struct {
	Binary string   // empty: Config.Ringtap
	Args   []string // flags after Config.RingtapArgs
	Env    []string // KEY=VALUE, added to the environment
}

// ParseVariant reads "label=word word ...": a word "bin=PATH" sets the
// binary, "env:KEY=VALUE" an environment variable, anything else is a flag
// for ringtap capture.
func ParseVariant(s string) (string, Variant, error) {
	label, spec, ok := strings.Cut(s, "=")
	if !ok || label == "" || strings.ContainsAny(label, "/ ,") {
		return "", Variant{}, fmt.Errorf("variant %q: want label=[bin=PATH] [env:K=V] [flags]", s)
	}
	if label == "ringtap" || label == "tcpdump" {
		return "", Variant{}, fmt.Errorf("variant %q: label %s is taken", s, label)
	}
	var v Variant
	for _, w := range strings.Fields(spec) {
		switch {
		case strings.HasPrefix(w, "bin="):
			v.Binary = strings.TrimPrefix(w, "bin=")
		case strings.HasPrefix(w, "env:"):
			kv := strings.TrimPrefix(w, "env:")
			if !strings.Contains(kv, "=") {
				return "", Variant{}, fmt.Errorf("variant %q: %q is not env:KEY=VALUE", s, w)
			}
			v.Env = append(v.Env, kv)
		default:
			v.Args = append(v.Args, w)
		}
	}
	return label, v, nil
}
