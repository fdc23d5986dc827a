package caps

import (
	"fmt"
	"strings"
)

// Capability numbers from linux/capability.h.
const (
	NetAdmin    = 12
	SysAdmin    = 21
	SysResource = 24
	Perfmon     = 38
	BPF         = 39
)

var names = map[int]string{
	NetAdmin:    "CAP_NET_ADMIN",
	SysAdmin:    "CAP_SYS_ADMIN",
	SysResource: "CAP_SYS_RESOURCE",
	Perfmon:     "CAP_PERFMON",
	BPF:         "CAP_BPF",
}

var uses = map[int]string{
	BPF:      "to create BPF maps and load programs",
	Perfmon:  "for the verifier to accept the capture programs",
	NetAdmin: "to attach programs at XDP and TC",
	SysAdmin: "to enter another network namespace",
}

// Name returns the CAP_ name of a capability number.
func Name(c int) string {
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("cap(%d)", c)
}

// ForCapture are the capabilities a capture needs, in the order they are
// named in messages.
var ForCapture = []int{BPF, NetAdmin, Perfmon}

// Set is a capability set, bit n for capability n.
type Set uint64

// Of returns the set holding cs.
func Of(cs ...int) Set {
	var s Set
	for _, c := range cs {
		s |= 1 << uint(c)
	}
	return s
}

// Has says whether s holds capability c.
func (s Set) Has(c int) bool { return s&(1<<uint(c)) != 0 }

// MissingForCapture returns what s lacks of ForCapture. CAP_SYS_ADMIN
// stands in for all of them (the kernel accepts it for CAP_BPF and
// CAP_PERFMON, and for attaching BPF links since Linux 6.x).
func (s Set) MissingForCapture() []int {
	if s.Has(SysAdmin) {
		return nil
	}
	var missing []int
	for _, c := range ForCapture {
		if !s.Has(c) {
			missing = append(missing, c)
		}
	}
	return missing
}

// MissingForNetNS returns CAP_SYS_ADMIN unless s holds it: entering
// another network namespace (setns) needs it in the namespace's owning
// user namespace.
func (s Set) MissingForNetNS() []int {
	if s.Has(SysAdmin) {
		return nil
	}
	return []int{SysAdmin}
}

// Needs is one sentence saying that task needs the capabilities cs, what
// each is for, and how to grant them, e.g. "capturing needs CAP_PERFMON
// (for the verifier to accept the capture programs); grant it (systemd
// AmbientCapabilities=, docker run --cap-add PERFMON, setcap) or run as
// root". It returns "" for no capabilities.
func Needs(task string, cs []int) string {
	if len(cs) == 0 {
		return ""
	}
	var named, why, add []string
	for _, c := range cs {
		named = append(named, Name(c))
		if u, ok := uses[c]; ok {
			if len(cs) > 1 {
				u = Name(c) + " " + u
			}
			why = append(why, u)
		}
		add = append(add, "--cap-add "+strings.TrimPrefix(Name(c), "CAP_"))
	}
	pronoun := "it"
	if len(cs) > 1 {
		pronoun = "them"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s needs %s", task, join(named))
	if len(why) > 0 {
		fmt.Fprintf(&b, " (%s)", join(why))
	}
	fmt.Fprintf(&b, "; grant %s (systemd AmbientCapabilities=, docker run %s, setcap) or run as root", pronoun, strings.Join(add, " "))
	return b.String()
}

// join lists words as English does: "a", "a and b", "a, b and c".
func join(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// Names returns the CAP_ names of cs.
func Names(cs []int) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = Name(c)
	}
	return out
}
