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
			return nil, fmt.Errorf("unknown scenario %q: use monitor, host-xdp, host-tc or reject", name)
		}
	}
	return out, nil
}
