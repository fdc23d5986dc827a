package caps

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestName(t *testing.T) {
	for c, want := range map[int]string{BPF: "CAP_BPF", NetAdmin: "CAP_NET_ADMIN", Perfmon: "CAP_PERFMON", SysAdmin: "CAP_SYS_ADMIN", SysResource: "CAP_SYS_RESOURCE", 99: "cap(99)"} {
		if got := Name(c); got != want {
			t.Errorf("Name(%d) = %q, want %q", c, got, want)
		}
	}
}

func TestSetMissing(t *testing.T) {
	tests := []struct {
		name        string
		set         Set
		wantCapture []string
		wantNetNS   []string
	}{
		{name: "none", set: 0, wantCapture: []string{"CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"}, wantNetNS: []string{"CAP_SYS_ADMIN"}},
		{name: "the three", set: Of(BPF, NetAdmin, Perfmon), wantNetNS: []string{"CAP_SYS_ADMIN"}},
		{name: "no perfmon", set: Of(BPF, NetAdmin), wantCapture: []string{"CAP_PERFMON"}, wantNetNS: []string{"CAP_SYS_ADMIN"}},
		{name: "no bpf", set: Of(NetAdmin, Perfmon), wantCapture: []string{"CAP_BPF"}, wantNetNS: []string{"CAP_SYS_ADMIN"}},
		{name: "no net admin", set: Of(BPF, Perfmon, SysResource), wantCapture: []string{"CAP_NET_ADMIN"}, wantNetNS: []string{"CAP_SYS_ADMIN"}},
		{name: "sys admin alone", set: Of(SysAdmin)},
		{name: "root", set: ^Set(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.wantCapture, Names(tt.set.MissingForCapture()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("MissingForCapture (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNetNS, Names(tt.set.MissingForNetNS()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("MissingForNetNS (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	tests := []struct {
		name string
		task string
		caps []int
		want string
	}{
		{name: "none", task: "capturing", want: ""},
		{name: "perfmon", task: "capturing", caps: []int{Perfmon},
			want: "capturing needs CAP_PERFMON (for the verifier to accept the capture programs); grant it (systemd AmbientCapabilities=, docker run --cap-add PERFMON, setcap) or run as root"},
		{name: "two", task: "capturing", caps: []int{BPF, NetAdmin},
			want: "capturing needs CAP_BPF and CAP_NET_ADMIN (CAP_BPF to create BPF maps and load programs and CAP_NET_ADMIN to attach programs at XDP and TC); grant them (systemd AmbientCapabilities=, docker run --cap-add BPF --cap-add NET_ADMIN, setcap) or run as root"},
		{name: "three", task: "capturing", caps: []int{BPF, NetAdmin, Perfmon},
			want: "capturing needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (CAP_BPF to create BPF maps and load programs, CAP_NET_ADMIN to attach programs at XDP and TC and CAP_PERFMON for the verifier to accept the capture programs); grant them (systemd AmbientCapabilities=, docker run --cap-add BPF --cap-add NET_ADMIN --cap-add PERFMON, setcap) or run as root"},
		{name: "no use known", task: "x", caps: []int{SysResource},
			want: "x needs CAP_SYS_RESOURCE; grant it (systemd AmbientCapabilities=, docker run --cap-add SYS_RESOURCE, setcap) or run as root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Needs(tt.task, tt.caps)); diff != "" {
				t.Errorf("Needs (-want +got):\n%s", diff)
			}
		})
	}
}
