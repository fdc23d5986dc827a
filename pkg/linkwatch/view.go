package linkwatch

import "slices"

// view is the set of links, keyed by index (stable across renames) with a
// name index for Lookup. Names are unique in it, as in the kernel.
type view struct {
	byIndex map[int]Link
	byName  map[string]int
}

func newView() view {
	return view{byIndex: map[int]Link{}, byName: map[string]int{}}
}

// set adds or updates l and reports whether the view changed. A new name
// for a known index is a rename; an entry under l's name with another index
// is stale (its deletion was missed) and goes.
func (v *view) set(l Link) bool {
	old, ok := v.byIndex[l.Index]
	if ok && old == l {
		return false
	}
	if ok && old.Name != l.Name {
		delete(v.byName, old.Name)
	}
	if idx, ok := v.byName[l.Name]; ok && idx != l.Index {
		delete(v.byIndex, idx)
	}
	v.byIndex[l.Index] = l
	v.byName[l.Name] = l.Index
	return true
}

// remove deletes the link with index and reports whether it was there.
func (v *view) remove(index int) bool {
	old, ok := v.byIndex[index]
	if !ok {
		return false
	}
	delete(v.byIndex, index)
	if v.byName[old.Name] == index {
		delete(v.byName, old.Name)
	}
	return true
}

// replace makes the view exactly links and returns what changed.
func (v *view) replace(links []Link) diff {
	next := newView()
	for _, l := range links {
		next.set(l)
	}
	d := diffViews(*v, next)
	*v = next
	return d
}

func (v *view) lookup(name string) (Link, bool) {
	idx, ok := v.byName[name]
	if !ok {
		return Link{}, false
	}
	return v.byIndex[idx], true
}

func (v *view) byNameCopy() map[string]Link {
	out := make(map[string]Link, len(v.byIndex))
	for _, l := range v.byIndex {
		out[l.Name] = l
	}
	return out
}

// diff is what a full dump changed, by link name, for logs.
type diff struct {
	Added, Removed, Changed []string
}

func (d diff) empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed) == 0
}

// diffViews compares by index: a renamed link is Changed, a recreated one
// (same name, new index) is Removed and Added.
func diffViews(old, next view) diff {
	var d diff
	for idx, l := range next.byIndex {
		o, ok := old.byIndex[idx]
		switch {
		case !ok:
			d.Added = append(d.Added, l.Name)
		case o != l:
			d.Changed = append(d.Changed, l.Name)
		}
	}
	for idx, o := range old.byIndex {
		if _, ok := next.byIndex[idx]; !ok {
			d.Removed = append(d.Removed, o.Name)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Removed)
	slices.Sort(d.Changed)
	return d
}
