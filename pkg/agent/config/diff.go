package config

import "slices"

// Equal says whether c and o capture the same way: every field but Line.
func (c Capture) Equal(o Capture) bool {
	c.Line, o.Line = 0, 0
	return c == o
}

// Diff is what a reload changes, by capture name, each list sorted.
type Diff struct {
	Added   []string // in the new config only: start them
	Changed []string // in both but different: restart them
	Removed []string // in the old config only: stop them
}

// Empty says whether the reload changes nothing.
func (d Diff) Empty() bool {
	return len(d.Added) == 0 && len(d.Changed) == 0 && len(d.Removed) == 0
}

// Compare is the difference between two lists of captures, matched by
// name; their order does not matter. A renamed capture is removed and
// added.
func Compare(old, new []Capture) Diff {
	return compare(old, new, func(Capture) bool { return false })
}

// CompareConfig is Compare of the two configs' captures, where a capture
// also counts as changed when an agent-wide setting it uses changed:
// rings (every capture) and export (the captures that upload). The
// other top-level keys (http, memory_budget, shutdown_hook, timeouts)
// concern the agent, not its captures.
func CompareConfig(old, new *Config) Diff {
	rings := old.Rings != new.Rings
	export := !exportEqual(old.Export, new.Export)
	return compare(old.Captures, new.Captures, func(c Capture) bool {
		return rings || export && c.Output.Export.URL != ""
	})
}

func exportEqual(a, b *Export) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// compare matches by name; changed(c) forces a capture c that is in
// both to count as changed.
func compare(old, new []Capture, changed func(Capture) bool) Diff {
	var d Diff
	before := make(map[string]Capture, len(old))
	for _, c := range old {
		before[c.Name] = c
	}
	after := make(map[string]bool, len(new))
	for _, c := range new {
		after[c.Name] = true
		o, ok := before[c.Name]
		switch {
		case !ok:
			d.Added = append(d.Added, c.Name)
		case !o.Equal(c) || changed(c):
			d.Changed = append(d.Changed, c.Name)
		}
	}
	for _, c := range old {
		if !after[c.Name] {
			d.Removed = append(d.Removed, c.Name)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Changed)
	slices.Sort(d.Removed)
	return d
}
