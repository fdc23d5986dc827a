//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/caps"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// privUser is the dedicated user the agent runs as (packaging/systemd).
const privUser = "ringtap"

// privCaps are the capabilities a capture needs, as setpriv names them.
var privCaps = []string{"bpf", "net_admin", "perfmon"}

// privSandbox is what the least-privilege tests share: the ringtap user, a
// copy of the binary it may execute and an output directory it owns.
type privSandbox struct {
	bin, out string
	uid, gid int
}

// mustPrivSandbox creates the ringtap system user if it is missing (and
// leaves it: the packaging expects it), and copies the test binary to a
// directory the user can read (the test binary's own directory is 0700).
func mustPrivSandbox(t *testing.T) privSandbox {
	t.Helper()
	testbedtest.RequirePrivileged(t)
	for _, tool := range []string{"setpriv", "ip", "capinfos"} {
		if _, err := exec.LookPath(tool); err != nil {
			testbedtest.SkipOrFail(t, "needs %s: %v", tool, err)
		}
	}
	u, err := user.Lookup(privUser)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/var/lib/ringtap", "--shell", "/usr/sbin/nologin", privUser).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd %s: %v\n%s", privUser, err, out)
		}
		if u, err = user.Lookup(privUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "ringtap-priv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := privSandbox{bin: filepath.Join(dir, "ringtap"), out: filepath.Join(dir, "out"), uid: uid, gid: gid}
	b, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.out, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.out, uid, gid); err != nil {
		t.Fatal(err)
	}
	return s
}

// setprivArgs runs the rest of a command line as the ringtap user with
// exactly the capabilities cs (setpriv names) in its inheritable, ambient
// and bounding sets, no supplementary groups and no_new_privs, as the
// systemd unit does.
func setprivArgs(cs []string) []string {
	set := "-all"
	for _, c := range cs {
		set += ",+" + c
	}
	return []string{"setpriv", "--reuid", privUser, "--regid", privUser, "--clear-groups", "--no-new-privs",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set}
}

// privCommand is `ip netns exec NS setpriv ... args`: ip enters the
// namespace as root, so the capture needs no CAP_SYS_ADMIN for setns.
func privCommand(ctx context.Context, h testbed.Host, cs []string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", h.NSName}, setprivArgs(cs)...)
	return exec.CommandContext(ctx, "ip", append(argv, args...)...)
}

// capMask is the /proc/PID/status form of a set of capabilities.
func capMask(cs ...int) string { return fmt.Sprintf("%016x", uint64(caps.Of(cs...))) }

// TestPrivilegeCaptureWithExactlyThreeCaps runs `ringtap capture` as the
// ringtap user with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON and nothing
// else, at XDP and at TC, and checks the file with capinfos.
func TestPrivilegeCaptureWithExactlyThreeCaps(t *testing.T) {
	sb := mustPrivSandbox(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtpriv"})

	// The child's sets are exactly the three capabilities.
	out, err := privCommand(context.Background(), pair.B, privCaps, "grep", "^Cap", "/proc/self/status").CombinedOutput()
	if err != nil {
		t.Fatalf("setpriv: %v\n%s", err, out)
	}
	want := capMask(caps.BPF, caps.NetAdmin, caps.Perfmon)
	for _, set := range []string{"CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if !strings.Contains(string(out), set+":\t"+want+"\n") {
			t.Fatalf("%s is not %s (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON):\n%s", set, want, out)
		}
	}
	if id, err := privCommand(context.Background(), pair.B, privCaps, "id", "-u").Output(); err != nil || strings.TrimSpace(string(id)) != strconv.Itoa(sb.uid) {
		t.Fatalf("child runs as uid %q (%v), want %d", id, err, sb.uid)
	}

	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			file := filepath.Join(sb.out, hook+".pcapng")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := privCommand(ctx, pair.B, privCaps, sb.bin, "capture", "-i", pair.B.Link, "--hook", hook, "-w", file, "-c", "20", "udp")
			s := mustStartCmd(t, cmd)
			if err := trafficgen.SendRaw(pair.A, mustUDP(t, pair, 25, 120)); err != nil {
				t.Fatal(err)
			}
			if err := s.wait(t); err != nil {
				t.Fatalf("exit: %v\n%s", err, s.stderr)
			}
			if got := capinfosCount(t, file); got != "20" {
				t.Fatalf("capinfos counted %s packets, want 20\n%s", got, s.stderr)
			}
			fi, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != sb.uid {
				t.Fatalf("%s is owned by uid %d, want the ringtap user's %d", file, uid, sb.uid)
			}
		})
	}
}

// TestPrivilegeAgentWithExactlyThreeCaps runs `ringtap agent --config` as
// the ringtap user with the three capabilities, as the systemd unit does,
// and checks the file its capture finished at SIGTERM.
func TestPrivilegeAgentWithExactlyThreeCaps(t *testing.T) {
	sb := mustPrivSandbox(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtpriv"})
	dir := filepath.Join(sb.out, "agent")
	conf := mustAgentConfig(t, sb, pair.B.Link, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := mustStartCmdUntil(t, privCommand(ctx, pair.B, privCaps, sb.bin, "agent", "--config", conf), `msg="capture running"`)
	if err := trafficgen.SendRaw(pair.A, mustUDP(t, pair, 25, 120)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// setpriv execs ringtap, so SIGTERM reaches the agent itself.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pcapng"))
	if err != nil || len(files) != 1 {
		t.Fatalf("want one finished file in %s, got %v (%v)\n%s", dir, files, err, s.stderr)
	}
	if got := capinfosCount(t, files[0]); got != "25" {
		t.Fatalf("capinfos counted %s packets, want 25\n%s", got, s.stderr)
	}
}

// mustAgentConfig writes an agent configuration capturing UDP on link
// into dir, readable by the ringtap user.
func mustAgentConfig(t *testing.T, sb privSandbox, link, dir string) string {
	t.Helper()
	conf := filepath.Join(filepath.Dir(sb.bin), "agent.yaml")
	yaml := fmt.Sprintf("captures:\n  - name: priv\n    interface: %s\n    filter: udp\n    output:\n      dir: %s\nstop_timeout: 10s\n", link, dir)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestPrivilegeMissingCapabilityNamesIt drops each of the three
// capabilities in turn: capture (at XDP and TC) and agent exit non-zero
// with one line naming it (without CAP_PERFMON the kernel would otherwise
// report a verifier rejection).
func TestPrivilegeMissingCapabilityNamesIt(t *testing.T) {
	sb := mustPrivSandbox(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtpriv"})
	tests := []struct {
		drop, name string
	}{
		{"bpf", "CAP_BPF"},
		{"net_admin", "CAP_NET_ADMIN"},
		{"perfmon", "CAP_PERFMON"},
	}
	conf := mustAgentConfig(t, sb, pair.B.Link, filepath.Join(sb.out, "agent"))
	commands := map[string][]string{
		"capture xdp": {sb.bin, "capture", "-i", pair.B.Link, "--hook", "xdp", "-w", filepath.Join(sb.out, "x.pcapng"), "-c", "1"},
		"capture tc":  {sb.bin, "capture", "-i", pair.B.Link, "--hook", "tc", "-w", filepath.Join(sb.out, "x.pcapng"), "-c", "1"},
		"agent":       {sb.bin, "agent", "--config", conf},
	}
	for _, what := range []string{"capture xdp", "capture tc", "agent"} {
		for _, tt := range tests {
			t.Run(what+" without "+tt.name, func(t *testing.T) {
				var keep []string
				for _, c := range privCaps {
					if c != tt.drop {
						keep = append(keep, c)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := privCommand(ctx, pair.B, keep, commands[what]...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				if err == nil {
					t.Fatalf("exit 0 without %s\n%s", tt.name, &stderr)
				}
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], "needs "+tt.name) {
					t.Fatalf("want one line saying that capturing needs %s, got:\n%s", tt.name, &stderr)
				}
			})
		}
	}
}

// TestPrivilegeNetNSNeedsSysAdmin: --netns (setns into another network
// namespace) is the one thing that needs CAP_SYS_ADMIN; a capture started
// inside the namespace, as above, does without it.
func TestPrivilegeNetNSNeedsSysAdmin(t *testing.T) {
	sb := mustPrivSandbox(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtpriv"})
	run := func(cs []string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Started in the host's namespace, not the pair's.
		cmd := exec.CommandContext(ctx, setprivArgs(cs)[0], append(setprivArgs(cs)[1:], sb.bin, "capture", "-i", pair.B.Link, "--netns", pair.B.NSPath, "-w", filepath.Join(sb.out, "ns.pcapng"), "--duration", "100ms", "-q")...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(privCaps); err == nil {
		t.Fatalf("--netns worked without CAP_SYS_ADMIN:\n%s", out)
	} else if !strings.Contains(out, "needs CAP_SYS_ADMIN") {
		t.Fatalf("--netns without CAP_SYS_ADMIN: want a permission error, got:\n%s", out)
	}
	if out, err := run(append([]string{"sys_admin"}, privCaps...)); err != nil {
		t.Fatalf("--netns with CAP_SYS_ADMIN: %v\n%s", err, out)
	}
}

// mustStartCmd starts cmd (a ringtap capture under other tools) and waits
// for its listening line.
func mustStartCmd(t *testing.T, cmd *exec.Cmd) *started {
	t.Helper()
	return mustStartCmdUntil(t, cmd, "listening on ")
}

// mustStartCmdUntil starts cmd and waits for a line of its stderr that
// contains ready.
func mustStartCmdUntil(t *testing.T, cmd *exec.Cmd, ready string) *started {
	t.Helper()
	s := &started{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	listening := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		once := false
		var line []byte
		for {
			n, err := pr.Read(buf)
			line = append(line, buf[:n]...)
			for {
				i := bytes.IndexByte(line, '\n')
				if i < 0 {
					break
				}
				l := string(line[:i])
				line = line[i+1:]
				s.stderr.WriteString(l + "\n")
				if !once && strings.Contains(l, ready) {
					once = true
					close(listening)
				}
			}
			if err != nil {
				s.stderr.Write(line)
				pr.Close()
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		<-copied
		s.done <- err
	}()
	select {
	case <-listening:
	case err := <-s.done:
		t.Fatalf("ringtap exited before listening: %v\n%s", err, s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("ringtap did not print %q\n%s", ready, s.stderr)
	}
	return s
}
