package linkwatch

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestView(t *testing.T) {
	lo := Link{Name: "lo", Index: 1, Up: true, EncapType: "loopback", MTU: 65536}
	eth := Link{Name: "eth0", Index: 2, Up: true, EncapType: "ether", MTU: 1500}
	type op struct {
		set    *Link
		remove int
		want   bool // changed
	}
	set := func(l Link, changed bool) op { return op{set: &l, want: changed} }
	remove := func(i int, changed bool) op { return op{remove: i, want: changed} }
	with := func(l Link, f func(*Link)) Link { f(&l); return l }
	for _, tc := range []struct {
		name string
		ops  []op
		want map[string]Link
	}{
		{"appear", []op{set(lo, true), set(eth, true)}, map[string]Link{"lo": lo, "eth0": eth}},
		{"duplicate", []op{set(eth, true), set(eth, false)}, map[string]Link{"eth0": eth}},
		{"disappear", []op{set(eth, true), remove(2, true)}, map[string]Link{}},
		{"remove unknown", []op{set(eth, true), remove(7, false)}, map[string]Link{"eth0": eth}},
		{"rename", []op{set(eth, true), set(with(eth, func(l *Link) { l.Name = "wan" }), true)},
			map[string]Link{"wan": with(eth, func(l *Link) { l.Name = "wan" })}},
		{"recreate", []op{set(eth, true), remove(2, true), set(with(eth, func(l *Link) { l.Index = 9 }), true)},
			map[string]Link{"eth0": with(eth, func(l *Link) { l.Index = 9 })}},
		{"recreate with missed delete", []op{set(eth, true), set(with(eth, func(l *Link) { l.Index = 9 }), true), remove(2, false)},
			map[string]Link{"eth0": with(eth, func(l *Link) { l.Index = 9 })}},
		{"down", []op{set(eth, true), set(with(eth, func(l *Link) { l.Up = false }), true)},
			map[string]Link{"eth0": with(eth, func(l *Link) { l.Up = false })}},
		{"mtu", []op{set(eth, true), set(with(eth, func(l *Link) { l.MTU = 9000 }), true)},
			map[string]Link{"eth0": with(eth, func(l *Link) { l.MTU = 9000 })}},
		{"swap names", []op{set(lo, true), set(eth, true),
			set(with(eth, func(l *Link) { l.Name = "lo" }), true)},
			map[string]Link{"lo": with(eth, func(l *Link) { l.Name = "lo" })}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView()
			for i, o := range tc.ops {
				var got bool
				if o.set != nil {
					got = v.set(*o.set)
				} else {
					got = v.remove(o.remove)
				}
				if got != o.want {
					t.Errorf("op %d: changed = %v, want %v", i, got, o.want)
				}
			}
			if diff := cmp.Diff(tc.want, v.byNameCopy()); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
			for name, l := range tc.want {
				if got, ok := v.lookup(name); !ok || got != l {
					t.Errorf("lookup(%q) = %v, %v; want %v, true", name, got, ok, l)
				}
			}
			if len(v.byName) != len(v.byIndex) {
				t.Errorf("name index has %d entries, index has %d", len(v.byName), len(v.byIndex))
			}
		})
	}
}

func TestViewReplace(t *testing.T) {
	lo := Link{Name: "lo", Index: 1, Up: true}
	a := Link{Name: "a", Index: 2}
	b := Link{Name: "b", Index: 3}
	for _, tc := range []struct {
		name       string
		old, links []Link
		want       diff
	}{
		{"same", []Link{lo, a}, []Link{a, lo}, diff{}},
		{"first", nil, []Link{lo}, diff{Added: []string{"lo"}}},
		{"added and removed", []Link{lo, a}, []Link{lo, b}, diff{Added: []string{"b"}, Removed: []string{"a"}}},
		{"renamed", []Link{lo, a}, []Link{lo, {Name: "z", Index: 2}}, diff{Changed: []string{"z"}}},
		{"recreated", []Link{lo, a}, []Link{lo, {Name: "a", Index: 4}}, diff{Added: []string{"a"}, Removed: []string{"a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView()
			for _, l := range tc.old {
				v.set(l)
			}
			got := v.replace(tc.links)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("diff (-want +got):\n%s", diff)
			}
			want := map[string]Link{}
			for _, l := range tc.links {
				want[l.Name] = l
			}
			if diff := cmp.Diff(want, v.byNameCopy()); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
		})
	}
}
