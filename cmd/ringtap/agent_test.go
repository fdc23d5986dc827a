//go:build linux

package main

// Integration tests of `ringtap agent`: the real binary (built by
// TestMain in main_test.go) runs in network namespaces the tests create,
// and is observed through its HTTP endpoints, its log, its files, bpftool
// and /proc.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/vishvananda/netlink"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// ---- the agent process ----

// itSyncBuffer collects the agent's log while tests read it.
type itSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *itSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *itSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// itAgentRun is a running `ringtap agent`.
type itAgentRun struct {
	cmd  *exec.Cmd
	log  *itSyncBuffer
	done chan struct{}
	err  error // Wait's result, once done is closed
	url  string
	cfg  string
}

var itAgentHTTP = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// mustITFreePort returns a 127.0.0.1 address nobody listens on.
func mustITFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// mustITStartAgent starts the agent on cfg in netns; with healthy it waits
// for /healthz to answer 200. The agent is killed at cleanup, and its log
// printed when the test failed.
func mustITStartAgent(t *testing.T, cfg, listen, netns string, healthy bool) *itAgentRun {
	t.Helper()
	a := &itAgentRun{log: &itSyncBuffer{}, done: make(chan struct{}), url: "http://" + listen, cfg: cfg}
	a.cmd = exec.Command(binPath, "agent", "--config", cfg, "--netns", netns)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("agent log:\n%s", a.log)
		}
	})
	if healthy {
		mustITWaitFor(t, 30*time.Second, "/healthz 200", func() (bool, string) {
			if a.exited() {
				t.Fatalf("agent exited: %v", a.err)
			}
			code, body, err := a.get("/healthz")
			return err == nil && code == 200, fmt.Sprint(code, body, err)
		})
	}
	return a
}

func (a *itAgentRun) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *itAgentRun) get(path string) (int, string, error) {
	resp, err := itAgentHTTP.Get(a.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (a *itAgentRun) mustStatus(t *testing.T) agent.Status {
	t.Helper()
	code, body, err := a.get("/status.json")
	if err != nil || code != 200 {
		t.Fatalf("GET /status.json: %d %v\n%s", code, err, body)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("decode /status.json: %v\n%s", err, body)
	}
	return st
}

func (a *itAgentRun) mustCapture(t *testing.T, name string) agent.CaptureStatus {
	t.Helper()
	return itFindCapture(t, a.mustStatus(t), name)
}

func itFindCapture(t *testing.T, st agent.Status, name string) agent.CaptureStatus {
	t.Helper()
	for _, c := range st.Captures {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("capture %s not in /status.json: %+v", name, st.Captures)
	return agent.CaptureStatus{}
}

// mustWaitState waits until every named capture is in state.
func (a *itAgentRun) mustWaitState(t *testing.T, state string, names ...string) agent.Status {
	t.Helper()
	var st agent.Status
	mustITWaitFor(t, 30*time.Second, fmt.Sprintf("captures %v %s", names, state), func() (bool, string) {
		st = a.mustStatus(t)
		var bad []string
		for _, n := range names {
			if c := itFindCapture(t, st, n); c.State != state {
				bad = append(bad, fmt.Sprintf("%s=%s(%s)", n, c.State, c.LastError))
			}
		}
		return len(bad) == 0, strings.Join(bad, " ")
	})
	return st
}

// mustWaitAllRunning waits until every capture of the status is running.
func (a *itAgentRun) mustWaitAllRunning(t *testing.T, want int) agent.Status {
	t.Helper()
	var st agent.Status
	mustITWaitFor(t, 60*time.Second, fmt.Sprintf("%d captures running", want), func() (bool, string) {
		st = a.mustStatus(t)
		var bad []string
		for _, c := range st.Captures {
			if c.State != agent.CaptureRunning {
				bad = append(bad, c.Name+"="+c.State+" "+c.LastError)
			}
		}
		return len(st.Captures) == want && len(bad) == 0, fmt.Sprintf("%d captures, not running: %v", len(st.Captures), bad)
	})
	return st
}

// mustReload sends SIGHUP and waits for the reload to end; it returns
// false when the agent rejected the file.
func (a *itAgentRun) mustReload(t *testing.T) bool {
	t.Helper()
	okRe, badRe := "level=INFO msg=reloaded ", "level=ERROR msg=reload "
	ok0, bad0 := strings.Count(a.log.String(), okRe), strings.Count(a.log.String(), badRe)
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var ok bool
	mustITWaitFor(t, 60*time.Second, "reload done", func() (bool, string) {
		l := a.log.String()
		ok = strings.Count(l, okRe) > ok0
		return ok || strings.Count(l, badRe) > bad0, ""
	})
	return ok
}

// mustStop sends sig and waits for the exit, at most within.
func (a *itAgentRun) mustStop(t *testing.T, sig syscall.Signal, within time.Duration) error {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.done:
		return a.err
	case <-time.After(within):
		t.Fatalf("agent did not exit within %s of %s", within, sig)
	}
	return nil
}

func (a *itAgentRun) logLines(substr string) []string {
	var out []string
	for l := range strings.SplitSeq(a.log.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func mustITWaitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- configuration ----

// itCapture is one capture of a generated config.
type itCapture struct {
	Name, Iface, Filter string
	Hook, Direction     string // "" for the defaults
	SnapLen             int
	Dir                 string
	Format, Compress    string
	Rotate              string // YAML flow mapping, e.g. "{size_mb: 1}"
}

type itConfig struct {
	Listen      string
	Pprof       bool
	RingSize    string
	StopTimeout string
	Captures    []itCapture
}

func (c itConfig) yaml() string {
	var b strings.Builder
	b.WriteString("captures:\n")
	for _, x := range c.Captures {
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n", x.Name, x.Iface)
		if x.Filter != "" {
			fmt.Fprintf(&b, "    filter: %q\n", x.Filter)
		}
		if x.Hook != "" {
			fmt.Fprintf(&b, "    hook: %s\n", x.Hook)
		}
		if x.Direction != "" {
			fmt.Fprintf(&b, "    direction: %s\n", x.Direction)
		}
		if x.SnapLen != 0 {
			fmt.Fprintf(&b, "    snaplen: %d\n", x.SnapLen)
		}
		fmt.Fprintf(&b, "    output:\n      dir: %s\n", x.Dir)
		if x.Format != "" {
			fmt.Fprintf(&b, "      format: %s\n", x.Format)
		}
		if x.Compress != "" {
			fmt.Fprintf(&b, "      compress: %s\n", x.Compress)
		}
		if x.Rotate != "" {
			fmt.Fprintf(&b, "      rotate: %s\n", x.Rotate)
		}
	}
	fmt.Fprintf(&b, "http:\n  listen: %s\n  pprof: %t\n", c.Listen, c.Pprof)
	if c.RingSize != "" {
		fmt.Fprintf(&b, "rings:\n  size: %s\n", c.RingSize)
	}
	if c.StopTimeout != "" {
		fmt.Fprintf(&b, "stop_timeout: %s\n", c.StopTimeout)
	}
	return b.String()
}

// mustITWriteFile replaces path atomically, so that a reload never reads
// half a file.
func mustITWriteFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// ---- interfaces and frames ----

// mustITVeth adds a veth between the pair's namespaces, aName in A and bName
// in B, both up, and returns the two ends as Hosts (without addresses).
func mustITVeth(t *testing.T, pair *testbed.Pair, aName, bName string) (a, b testbed.Host) {
	t.Helper()
	a, b = pair.A, pair.B
	a.IPv4, b.IPv4 = netip.Addr{}, netip.Addr{}
	if err := pair.A.Do(func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(int(pair.B.NS))}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("add veth %s/%s: %w", aName, bName, err)
		}
		return itSetUp(aName, &a)
	}); err != nil {
		t.Fatal(err)
	}
	if err := pair.B.Do(func() error { return itSetUp(bName, &b) }); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// itSetUp sets the link up and fills h from it; it runs inside h's namespace.
func itSetUp(name string, h *testbed.Host) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return err
	}
	h.Link, h.Index, h.MAC = name, l.Attrs().Index, l.Attrs().HardwareAddr
	return nil
}

func mustITLinkDo(t *testing.T, h testbed.Host, fn func() error) {
	t.Helper()
	if err := h.Do(fn); err != nil {
		t.Fatal(err)
	}
}

func itRenameLink(from, to string) error {
	l, err := netlink.LinkByName(from)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetDown(l); err != nil {
		return err
	}
	if err := netlink.LinkSetName(l, to); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

func itDelLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkDel(l)
}

// itStreamFrame is the UDP frame of the steady streams from a to b.
func itStreamFrame(t *testing.T, a, b testbed.Host, subnet byte) []byte {
	t.Helper()
	f, err := trafficgen.BuildUDP4(trafficgen.FrameOpts{SrcMAC: a.MAC, DstMAC: b.MAC,
		Src: netip.AddrFrom4([4]byte{198, 18, subnet, 1}), Dst: netip.AddrFrom4([4]byte{198, 18, subnet, 2}),
		SrcPort: 5000, DstPort: 9, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// itMixedFrames is a varied set: UDP to port 1000 and others, ICMP, TCP, ARP,
// of several sizes, each different (Seed).
func itMixedFrames(t *testing.T, a, b testbed.Host, seed byte) [][]byte {
	t.Helper()
	src, dst := netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.7.2")
	var out [][]byte
	add := func(build trafficgen.Builder, o trafficgen.FrameOpts) {
		o.SrcMAC, o.DstMAC, o.Src, o.Dst, o.Seed = a.MAC, b.MAC, src, dst, seed+byte(len(out))
		out = append(out, trafficgen.Must(build(o)))
	}
	for i, size := range []int{60, 90, 200, 777, 1400} {
		add(trafficgen.BuildUDP4, trafficgen.FrameOpts{SrcPort: 4000 + uint16(i), DstPort: 1000, Size: size})
		add(trafficgen.BuildUDP4, trafficgen.FrameOpts{SrcPort: 1000, DstPort: 2000 + uint16(i), Size: size})
		add(trafficgen.BuildICMP4, trafficgen.FrameOpts{SrcPort: 7, DstPort: uint16(i), Size: size})
		add(trafficgen.BuildTCP4, trafficgen.FrameOpts{SrcPort: 3333, DstPort: 1000, TCPFlags: trafficgen.TCPSyn, Size: size})
	}
	add(trafficgen.BuildARP, trafficgen.FrameOpts{})
	return out
}

// mustITSend sends frames from h and fails the test on error.
func mustITSend(t *testing.T, h testbed.Host, frames [][]byte) {
	t.Helper()
	if err := trafficgen.SendRaw(h, frames); err != nil {
		t.Fatal(err)
	}
}

// ---- files ----

// itFinishedFiles lists the final (not hidden, not sidecar) files of dir,
// sorted by name, which sorts them by start time.
func itFinishedFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".json") || e.IsDir() {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	sort.Strings(out)
	return out
}

func itHiddenFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// itCapinfosPackets counts a file's packets with capinfos.
func itCapinfosPackets(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(capinfosCount(t, path))
	if err != nil {
		t.Fatalf("capinfos %s: %v", path, err)
	}
	return n
}

func itSumPackets(t *testing.T, files []string) int {
	t.Helper()
	n := 0
	for _, f := range files {
		n += itCapinfosPackets(t, f)
	}
	return n
}

// itReadCapture reads a capture file (.zst decompressed) with pcapio: the
// packets' data and the last statistics block of each interface.
func itReadCapture(t *testing.T, path string) ([][]byte, map[int]pcapio.InterfaceStats) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var in io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".zst") {
		zr, err := zstd.NewReader(in)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		in = zr
	}
	r, err := pcapio.NewReader(in)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out [][]byte
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: packet %d: %v", path, len(out), err)
		}
		out = append(out, bytes.Clone(p.Data))
	}
	return out, r.Stats()
}

func mustITWritePcap(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapio.NewWriter(f, pcapio.WriterOptions{Format: pcapio.FormatPCAP, Interfaces: []pcapio.Interface{{Name: "ref", LinkType: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		if err := w.WritePacket(&pcapio.Packet{Timestamp: int64(i+1) * 1e6, WireLen: uint32(len(fr)), Data: fr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// itTcpdumpSelect returns what tcpdump's filter expr selects of frames, each
// cut to snaplen.
func itTcpdumpSelect(t *testing.T, frames [][]byte, expr string, snaplen int) [][]byte {
	t.Helper()
	dir := t.TempDir()
	ref, sel := filepath.Join(dir, "ref.pcap"), filepath.Join(dir, "sel.pcap")
	mustITWritePcap(t, ref, frames)
	if out, err := exec.Command("tcpdump", "-r", ref, "-w", sel, expr).CombinedOutput(); err != nil {
		t.Fatalf("tcpdump %q: %v\n%s", expr, err, out)
	}
	got, _ := itReadCapture(t, sel)
	for i := range got {
		got[i] = got[i][:min(len(got[i]), snaplen)]
	}
	return got
}

// ---- leaks ----

// itBpfIDs are ids of kernel BPF objects.
type itBpfIDs struct {
	Progs, Maps, Links []int
}

func (b itBpfIDs) counts() [3]int { return [3]int{len(b.Progs), len(b.Maps), len(b.Links)} }

// mustITRTObjects lists with bpftool the programs and maps whose name starts
// with rt_ or ringtap, and the links of those programs.
func mustITRTObjects(t *testing.T) itBpfIDs {
	t.Helper()
	if _, err := exec.LookPath("bpftool"); err != nil {
		testbedtest.SkipOrFail(t, "bpftool not on PATH (Debian package bpftool): %v", err)
	}
	show := func(kind string) []map[string]any {
		out, err := exec.Command("bpftool", "-j", kind, "show").Output()
		if err != nil {
			t.Fatalf("bpftool %s show: %v", kind, err)
		}
		var v []map[string]any
		if len(bytes.TrimSpace(out)) > 0 {
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("bpftool %s show: %v\n%s", kind, err, out)
			}
		}
		return v
	}
	ours := func(o map[string]any) bool {
		n, _ := o["name"].(string)
		// rt_tg_ are trafficgen's (the test's senders and counters).
		return (strings.HasPrefix(n, "rt_") || strings.HasPrefix(n, "ringtap")) && !strings.HasPrefix(n, "rt_tg_")
	}
	var ids itBpfIDs
	progs := map[int]bool{}
	for _, p := range show("prog") {
		if ours(p) {
			id := int(p["id"].(float64))
			progs[id] = true
			ids.Progs = append(ids.Progs, id)
		}
	}
	for _, m := range show("map") {
		if ours(m) {
			ids.Maps = append(ids.Maps, int(m["id"].(float64)))
		}
	}
	for _, l := range show("link") {
		if pid, ok := l["prog_id"].(float64); ok && progs[int(pid)] {
			ids.Links = append(ids.Links, int(l["id"].(float64)))
		}
	}
	sort.Ints(ids.Progs)
	sort.Ints(ids.Maps)
	sort.Ints(ids.Links)
	return ids
}

// itHeldBy returns the BPF object ids that process pid holds an fd of
// (pid 0: every process), with the maps of the programs
// held, which those keep alive.
func itHeldBy(pid int) (progs, maps, links map[int]bool) {
	progs, maps, links = map[int]bool{}, map[int]bool{}, map[int]bool{}
	procs := []string{strconv.Itoa(pid)}
	if pid == 0 {
		ents, _ := os.ReadDir("/proc")
		procs = procs[:0]
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				procs = append(procs, e.Name())
			}
		}
	}
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join("/proc", p, "fdinfo"))
		for _, fd := range fds {
			b, err := os.ReadFile(filepath.Join("/proc", p, "fdinfo", fd.Name()))
			if err != nil {
				continue
			}
			for l := range strings.SplitSeq(string(b), "\n") {
				k, v, ok := strings.Cut(l, ":")
				if !ok {
					continue
				}
				id, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					continue
				}
				switch k {
				case "prog_id":
					progs[id] = true
				case "map_id":
					maps[id] = true
				case "link_id":
					links[id] = true
				}
			}
		}
	}
	return progs, maps, links
}

// itNewRTObjects are the rt_ objects now that were not there before and
// that no other process holds: what a ringtap that exited left behind.
func itNewRTObjects(t *testing.T, before itBpfIDs) itBpfIDs {
	t.Helper()
	now := mustITRTObjects(t)
	hp, hm, hl := itHeldBy(0)
	// Maps are kept alive by the programs that use them.
	out, _ := exec.Command("bpftool", "-j", "prog", "show").Output()
	var progs []struct {
		ID   int   `json:"id"`
		Maps []int `json:"map_ids"`
	}
	_ = json.Unmarshal(out, &progs)
	for _, p := range progs {
		if hp[p.ID] {
			for _, m := range p.Maps {
				hm[m] = true
			}
		}
	}
	fresh := func(now, before []int, held map[int]bool) []int {
		old := map[int]bool{}
		for _, id := range before {
			old[id] = true
		}
		var out []int
		for _, id := range now {
			if !old[id] && !held[id] {
				out = append(out, id)
			}
		}
		return out
	}
	return itBpfIDs{Progs: fresh(now.Progs, before.Progs, hp), Maps: fresh(now.Maps, before.Maps, hm), Links: fresh(now.Links, before.Links, hl)}
}

// mustITNoNewRTObjects waits a few seconds (the kernel frees BPF objects
// after an RCU grace period) for the rt_ objects created since before to
// be gone.
func mustITNoNewRTObjects(t *testing.T, before itBpfIDs) {
	t.Helper()
	var left itBpfIDs
	mustITWaitFor(t, 10*time.Second, "no rt_ BPF object left", func() (bool, string) {
		left = itNewRTObjects(t, before)
		return left.counts() == [3]int{}, fmt.Sprintf("%+v", left)
	})
}

// itProcUsage is what a process holds that must not grow.
type itProcUsage struct {
	Goroutines int
	FDs        int
	Progs      int // BPF objects it holds an fd of
	Maps       int
	Links      int
}

var itGoroutineTotal = regexp.MustCompile(`goroutine profile: total (\d+)`)

func (a *itAgentRun) mustUsage(t *testing.T) (itProcUsage, string) {
	t.Helper()
	code, body, err := a.get("/debug/pprof/goroutine?debug=1")
	if err != nil || code != 200 {
		t.Fatalf("goroutine profile: %d %v", code, err)
	}
	m := itGoroutineTotal.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("goroutine profile without total:\n%s", body)
	}
	var u itProcUsage
	u.Goroutines, _ = strconv.Atoi(m[1])
	pid := a.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	u.FDs = len(fds)
	p, mm, l := itHeldBy(pid)
	u.Progs, u.Maps, u.Links = len(p), len(mm), len(l)
	return u, body
}

// ---- the tests ----

// itChurned is the number of captures TestAgentChurn adds, changes and
// removes, besides one untouched capture per interface: 50 captures on 3
// interfaces in all.
const itChurned = 47

// TestAgentChurn: captures on 3 interfaces are added, changed and removed
// by SIGHUP reloads while a steady stream flows on each interface; the
// capture of each interface that was never touched gets every frame sent,
// and nothing leaks.
func TestAgentChurn(t *testing.T) {
	skipInKernelMatrix(t, "50 captures churned by reloads re-verify hundreds of programs, minutes under emulation; the pkg/capture engine tests check the kernel side (64 filters on one hook, churn at XDP and clsact)")
	testbedtest.RequirePrivileged(t)
	t.Run("capacity", testAgentCapacity)
	t.Run("reloads", testAgentChurn)
}

// testAgentCapacity: an interface takes MaxCapturesPerInterface (64)
// captures, as the config package allows, each with a filter of its own.
func testAgentCapacity(t *testing.T) {
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	listen := mustITFreePort(t)
	c := itConfig{Listen: listen, RingSize: "2MiB"}
	for i := range capture.MaxCapturesPerInterface {
		c.Captures = append(c.Captures, itCapture{Name: fmt.Sprintf("c%02d", i), Iface: pair.B.Link,
			Filter: fmt.Sprintf("udp dst port %d or tcp src port %d", 1000+i, 2000+i), Hook: "xdp", SnapLen: 128, Dir: filepath.Join(dir, fmt.Sprintf("c%02d", i))})
	}
	mustITWriteFile(t, cfgPath, c.yaml())
	a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)
	mustITWaitFor(t, 90*time.Second, "64 captures on one interface running", func() (bool, string) {
		st := a.mustStatus(t)
		running := 0
		for _, c := range st.Captures {
			if c.State == agent.CaptureFailed {
				t.Fatalf("capture %s failed after %d captures ran: %.300s", c.Name, running, c.LastError)
			}
			if c.State == agent.CaptureRunning {
				running++
			}
		}
		return running == len(c.Captures), fmt.Sprintf("%d running", running)
	})
}

func testAgentChurn(t *testing.T) {
	rtBefore := mustITRTObjects(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	a1, b1 := mustITVeth(t, pair, "itc1a", "itc1b")
	a2, b2 := mustITVeth(t, pair, "itc2a", "itc2b")
	as, bs := []testbed.Host{pair.A, a1, a2}, []testbed.Host{pair.B, b1, b2}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	listen := mustITFreePort(t)

	filters := []string{"udp", "tcp", "udp and src port 5003", "not udp", "udp dst port 9 or icmp", "ip", "len > 100", "udp src portrange 5000-5007"}
	round := func(r int) itConfig {
		c := itConfig{Listen: listen, Pprof: true, RingSize: "2MiB"}
		for i, b := range bs {
			c.Captures = append(c.Captures, itCapture{Name: fmt.Sprintf("keep%d", i), Iface: b.Link, Filter: "udp", Hook: "xdp", SnapLen: 128,
				Dir: filepath.Join(dir, fmt.Sprintf("keep%d", i))})
		}
		for j := range itChurned {
			if (j+r)%5 == 0 && r != 0 {
				continue // removed in this round, back in the next
			}
			x := itCapture{Name: fmt.Sprintf("c%02d", j), Iface: bs[j%3].Link, Filter: filters[(j+r)%len(filters)],
				SnapLen: 64 + ((j*7+r)%4)*64, Dir: filepath.Join(dir, fmt.Sprintf("c%02d", j))}
			switch j % 4 {
			case 0, 2:
				x.Hook = "xdp"
			case 1:
				x.Hook, x.Direction = "tc", "in"
			case 3:
				x.Hook, x.Direction = "tc", "inout"
			}
			c.Captures = append(c.Captures, x)
		}
		return c
	}
	mustITWriteFile(t, cfgPath, round(0).yaml())
	a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)
	a.mustWaitAllRunning(t, len(round(0).Captures))

	// Baseline: the first start of every capture is behind us; settle.
	time.Sleep(time.Second)
	base, baseProfile := a.mustUsage(t)
	rtRunning := mustITRTObjects(t)
	t.Logf("baseline: %+v", base)

	// A steady stream on each interface.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type sent struct {
		res trafficgen.Result
		err error
	}
	results := make([]chan sent, len(as))
	// Frames the sending veth cannot hand to its peer (the receiving CPU
	// fell behind, as it may with 50 captures reloading on 2 CPUs) never
	// reach a hook; the kernel counts them as the sender's tx_dropped.
	// They are the veth's losses, not ringtap's.
	txDropped0 := make([]uint64, len(as))
	for i := range as {
		var err error
		if txDropped0[i], err = trafficgen.CountTxDropped(as[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range as {
		s, err := trafficgen.NewLiveSender(as[i], itStreamFrame(t, as[i], bs[i], byte(10+i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.SetFlows(8); err != nil {
			t.Fatal(err)
		}
		results[i] = make(chan sent, 1)
		go func() {
			res, err := s.Run(ctx, 0, 20000)
			results[i] <- sent{res, err}
		}()
	}
	stopSenders := func() []trafficgen.Result {
		cancel()
		var out []trafficgen.Result
		for i, ch := range results {
			r := <-ch
			if r.err != nil {
				t.Fatalf("sender %d: %v", i, r.err)
			}
			out = append(out, r.res)
		}
		return out
	}
	defer func() {
		if ctx.Err() == nil {
			stopSenders()
		}
	}()

	// Churn: every round adds, changes and removes captures; the last
	// returns to the first config.
	var reloads []time.Duration
	for _, r := range []int{1, 2, 3, 4, 0} {
		mustITWriteFile(t, cfgPath, round(r).yaml())
		start := time.Now()
		if !a.mustReload(t) {
			t.Fatalf("round %d: reload rejected", r)
		}
		a.mustWaitAllRunning(t, len(round(r).Captures))
		reloads = append(reloads, time.Since(start).Round(time.Millisecond))
		for i := range bs {
			if c := a.mustCapture(t, fmt.Sprintf("keep%d", i)); c.CurrentFile == "" || c.Files != 0 {
				t.Fatalf("round %d: keep%d was disturbed: %+v", r, i, c)
			}
		}
	}
	t.Logf("reloads took %v", reloads)
	res := stopSenders()

	// Every frame of the untouched captures that reached the hook, per
	// interface.
	reached := make([]uint64, len(bs))
	for i := range bs {
		name := fmt.Sprintf("keep%d", i)
		dropped, err := trafficgen.CountTxDropped(as[i])
		if err != nil {
			t.Fatal(err)
		}
		dropped -= txDropped0[i]
		if dropped > res[i].Sent {
			t.Fatalf("%s: %s counts %d frames dropped of the %d sent", name, as[i].Link, dropped, res[i].Sent)
		}
		want := res[i].Sent - dropped
		reached[i] = want
		if res[i].Retries > 0 {
			t.Logf("%s: sender restarted %d calls: Sent is a lower bound", name, res[i].Retries)
		}
		if dropped > 0 {
			t.Logf("%s: the veth dropped %d of the %d frames sent before the hook (tx_dropped on %s)", name, dropped, res[i].Sent, as[i].Link)
		}
		var c agent.CaptureStatus
		mustITWaitFor(t, 20*time.Second, name+" counts settle", func() (bool, string) {
			c = a.mustCapture(t, name)
			rx, _ := trafficgen.CountRx(bs[i])
			return c.Matched == want && c.Captured == want && c.Written == want,
				fmt.Sprintf("sent %d, dropped by the veth %d, rx %d: %+v", res[i].Sent, dropped, rx, c)
		})
		rx, _ := trafficgen.CountRx(bs[i])
		t.Logf("%s on %s: sent %d, reached the hook %d, rx %d, seen %d matched %d captured %d written %d ring_drops %d",
			name, bs[i].Link, res[i].Sent, want, rx, c.Seen, c.Matched, c.Captured, c.Written, c.RingDrops)
		if c.RingDrops != 0 || c.CopyFailures != 0 || c.WriteDrops != 0 {
			t.Errorf("%s lost frames: %+v", name, c)
		}
	}

	// Back at the first config: nothing grew.
	var after itProcUsage
	var afterProfile string
	mustITWaitFor(t, 15*time.Second, "usage back at the baseline", func() (bool, string) {
		after, afterProfile = a.mustUsage(t)
		return after == base, fmt.Sprintf("baseline %+v, after churn %+v", base, after)
	})
	if t.Failed() {
		t.Logf("goroutines at the baseline:\n%s\nafter the churn:\n%s", baseProfile, afterProfile)
	}
	rtChurned := mustITRTObjects(t)
	if diff := cmp.Diff(rtRunning.counts(), rtChurned.counts()); diff != "" {
		t.Errorf("rt_ programs, maps, links at the baseline and after the churn (-want +got):\n%s", diff)
	}
	t.Logf("usage: baseline %+v, after churn %+v; rt_ objects %v and %v", base, after, rtRunning.counts(), rtChurned.counts())

	if err := a.mustStop(t, syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	for i := range bs {
		name := fmt.Sprintf("keep%d", i)
		files := itFinishedFiles(t, filepath.Join(dir, name))
		if got := itSumPackets(t, files); uint64(got) != reached[i] || len(files) != 1 {
			t.Errorf("%s: %d packets in %d files, want %d in 1", name, got, len(files), reached[i])
		}
	}
	mustITNoNewRTObjects(t, rtBefore)
}

// TestAgentTwoCapturesOneInterface: two captures of one interface, one
// at XDP and one at TC, each get exactly what tcpdump's filter selects,
// and changing one by a reload leaves the other alone.
func TestAgentTwoCapturesOneInterface(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	listen := mustITFreePort(t)
	port := itCapture{Name: "port", Iface: pair.B.Link, Filter: "udp dst port 1000", Hook: "xdp", SnapLen: 64, Dir: filepath.Join(dir, "port")}
	mixed := itCapture{Name: "mixed", Iface: pair.B.Link, Filter: "udp or icmp", Hook: "tc", SnapLen: 100, Dir: filepath.Join(dir, "mixed")}
	mustITWriteFile(t, cfgPath, itConfig{Listen: listen, Captures: []itCapture{port, mixed}}.yaml())
	a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)
	st := a.mustWaitState(t, agent.CaptureRunning, "port", "mixed")
	portFile := itFindCapture(t, st, "port").CurrentFile

	first := itMixedFrames(t, pair.A, pair.B, 0)
	mustITSend(t, pair.A, first)
	wantPort := itTcpdumpSelect(t, first, port.Filter, port.SnapLen)
	wantMixed := itTcpdumpSelect(t, first, mixed.Filter, mixed.SnapLen)
	mustITWaitFor(t, 20*time.Second, "first frames counted", func() (bool, string) {
		st := a.mustStatus(t)
		p, m := itFindCapture(t, st, "port"), itFindCapture(t, st, "mixed")
		return p.Written == uint64(len(wantPort)) && m.Written == uint64(len(wantMixed)),
			fmt.Sprintf("port %d/%d, mixed %d/%d", p.Written, len(wantPort), m.Written, len(wantMixed))
	})

	// Change mixed; port keeps its file and counts exactly.
	mixed.Filter = "icmp"
	mustITWriteFile(t, cfgPath, itConfig{Listen: listen, Captures: []itCapture{port, mixed}}.yaml())
	if !a.mustReload(t) {
		t.Fatal("reload rejected")
	}
	a.mustWaitState(t, agent.CaptureRunning, "port", "mixed")
	second := itMixedFrames(t, pair.A, pair.B, 100)
	mustITSend(t, pair.A, second)
	wantPort = append(wantPort, itTcpdumpSelect(t, second, port.Filter, port.SnapLen)...)
	wantMixed2 := itTcpdumpSelect(t, second, mixed.Filter, mixed.SnapLen)
	var p agent.CaptureStatus
	mustITWaitFor(t, 20*time.Second, "second frames counted", func() (bool, string) {
		st := a.mustStatus(t)
		var m agent.CaptureStatus
		p, m = itFindCapture(t, st, "port"), itFindCapture(t, st, "mixed")
		return p.Written == uint64(len(wantPort)) && m.Written == uint64(len(wantMixed2)),
			fmt.Sprintf("port %d/%d, mixed %d/%d", p.Written, len(wantPort), m.Written, len(wantMixed2))
	})
	if p.CurrentFile != portFile || p.Files != 0 || p.Matched != uint64(len(wantPort)) {
		t.Errorf("port was disturbed by the reload of mixed: file %s (was %s), files %d, matched %d want %d",
			p.CurrentFile, portFile, p.Files, p.Matched, len(wantPort))
	}

	if err := a.mustStop(t, syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	tests := []struct {
		name  string
		files int
		want  [][]byte
	}{
		{"port", 1, wantPort},
		{"mixed", 2, append(wantMixed, wantMixed2...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := itFinishedFiles(t, filepath.Join(dir, tt.name))
			if len(files) != tt.files {
				t.Fatalf("files %v, want %d", files, tt.files)
			}
			var got [][]byte
			for _, f := range files {
				pk, _ := itReadCapture(t, f)
				got = append(got, pk...)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("packets (-tcpdump +ringtap):\n%s", diff)
			}
			if n := itSumPackets(t, files); n != len(tt.want) {
				t.Errorf("capinfos counts %d, want %d", n, len(tt.want))
			}
		})
	}
}

// TestAgentInterfaceLifecycle: a capture binds to an interface name: it
// waits for it, runs while it exists under that name, and finishes its
// file each time it goes.
func TestAgentInterfaceLifecycle(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := t.TempDir()
	out := filepath.Join(dir, "late")
	cfgPath := filepath.Join(dir, "agent.yaml")
	listen := mustITFreePort(t)
	mustITWriteFile(t, cfgPath, itConfig{Listen: listen, Captures: []itCapture{
		{Name: "late", Iface: "itlate", Filter: "udp", Hook: "xdp", Dir: out},
	}}.yaml())
	a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)

	var wantFiles []int
	var sender testbed.Host
	lastFile := ""
	steps := []struct {
		name  string
		do    func(t *testing.T)
		state string
		send  int // frames sent once running
		file  bool
	}{
		{"configured before the interface", func(t *testing.T) {}, agent.CaptureWaitingForInterface, 0, false},
		{"interface created", func(t *testing.T) { sender, _ = mustITVeth(t, pair, "itlatep", "itlate") }, agent.CaptureRunning, 5, false},
		{"interface deleted", func(t *testing.T) { mustITLinkDo(t, pair.B, func() error { return itDelLink("itlate") }) }, agent.CaptureWaitingForInterface, 0, true},
		{"interface recreated", func(t *testing.T) { sender, _ = mustITVeth(t, pair, "itlatep", "itlate") }, agent.CaptureRunning, 7, false},
		{"renamed away", func(t *testing.T) { mustITLinkDo(t, pair.B, func() error { return itRenameLink("itlate", "itother") }) }, agent.CaptureWaitingForInterface, 0, true},
		{"renamed back", func(t *testing.T) { mustITLinkDo(t, pair.B, func() error { return itRenameLink("itother", "itlate") }) }, agent.CaptureRunning, 3, false},
	}
	var pending, errLines int
	var total uint64
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			st := a.mustWaitState(t, s.state, "late")
			c := itFindCapture(t, st, "late")
			if s.file {
				wantFiles = append(wantFiles, pending)
				pending = 0
			}
			if code, body, err := a.get("/readyz"); err != nil || code != 200 {
				t.Errorf("/readyz %d %v: %s", code, err, body)
			}
			if s.state == agent.CaptureRunning {
				if c.CurrentFile == "" || c.CurrentFile == lastFile {
					t.Errorf("running with file %q, the last was %q: want a new one", c.CurrentFile, lastFile)
				}
				lastFile = c.CurrentFile
				f := itStreamFrame(t, sender, pair.B, 20)
				frames := make([][]byte, s.send)
				for i := range frames {
					frames[i] = f
				}
				mustITSend(t, sender, frames)
				pending += s.send
				total += uint64(s.send)
				mustITWaitFor(t, 20*time.Second, "frames written", func() (bool, string) {
					c := a.mustCapture(t, "late")
					return c.Written == total, fmt.Sprintf("written %d, want %d", c.Written, total)
				})
			} else if c.CurrentFile != "" {
				t.Errorf("waiting with a current file %s", c.CurrentFile)
			}
			if s.name == "renamed away" {
				away := pair.B
				mustITLinkDo(t, pair.B, func() error { return itSetUp("itother", &away) })
				if got := testbedtest.MustAttached(t, away); len(got) > 0 {
					t.Errorf("still attached to the interface renamed away: %v", got)
				}
			}
			if l := a.logLines("capture stopped with an error"); len(l) > errLines {
				t.Errorf("the capture did not stop cleanly: %v", l[errLines:])
				errLines = len(l)
			}
			var got []int
			for _, f := range itFinishedFiles(t, out) {
				got = append(got, itCapinfosPackets(t, f))
			}
			if diff := cmp.Diff(wantFiles, got); diff != "" {
				t.Errorf("packets per finished file (-want +got):\n%s", diff)
			}
			if c := a.mustCapture(t, "late"); c.Files != uint64(len(wantFiles)) {
				t.Errorf("status counts %d files, want %d", c.Files, len(wantFiles))
			}
		})
	}
	if err := a.mustStop(t, syscall.SIGTERM, 60*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	var got []int
	for _, f := range itFinishedFiles(t, out) {
		got = append(got, itCapinfosPackets(t, f))
	}
	if diff := cmp.Diff(append(wantFiles, pending), got); diff != "" {
		t.Errorf("packets per file after stop (-want +got):\n%s", diff)
	}
}

// TestAgentComponentRestart: the http component fails while its port is
// taken and is restarted with a growing backoff, while a capture keeps
// running; once the port is free, http comes up.
func TestAgentComponentRestart(t *testing.T) {
	skipInKernelMatrix(t, "the supervisor and the HTTP server do not depend on the kernel")
	testbedtest.RequirePrivileged(t)
	pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listen := ln.Addr().String()
	out := filepath.Join(dir, "cap")
	mustITWriteFile(t, cfgPath, itConfig{Listen: listen, Captures: []itCapture{
		{Name: "cap", Iface: pair.B.Link, Filter: "udp", Dir: out},
	}}.yaml())
	a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, false)
	mustITWaitFor(t, 30*time.Second, "capture running", func() (bool, string) {
		return len(a.logLines(`msg="capture running" capture=cap`)) > 0, ""
	})

	const perBatch = 10
	failRe := regexp.MustCompile(`^time=(\S+) level=ERROR msg="component failed" component=http .* failures=(\d+) backoff=(\S+)`)
	var fails []time.Time
	var backoffs []time.Duration
	sent := 0
	for want := 1; want <= 3; want++ {
		mustITWaitFor(t, 30*time.Second, fmt.Sprintf("http failure %d", want), func() (bool, string) {
			return len(a.logLines(`msg="component failed" component=http`)) >= want, ""
		})
		mustITSend(t, pair.A, mustUDP(t, pair, perBatch, 100))
		sent += perBatch
	}
	for _, l := range a.logLines(`msg="component failed" component=http`) {
		m := failRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected failure line %q", l)
		}
		if !strings.Contains(l, "address already in use") {
			t.Errorf("failure does not say the address is in use: %s", l)
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			t.Fatal(err)
		}
		fails, backoffs = append(fails, ts), append(backoffs, d)
	}
	ln.Close()
	mustITWaitFor(t, 30*time.Second, "/healthz after the port was freed", func() (bool, string) {
		code, _, err := a.get("/healthz")
		return code == 200, fmt.Sprint(code, err)
	})
	var gaps []time.Duration
	for i := 1; i < len(fails); i++ {
		gaps = append(gaps, fails[i].Sub(fails[i-1]))
	}
	t.Logf("http failed at %v; backoffs %v; gaps %v", fails, backoffs, gaps)
	for i := 1; i < len(backoffs); i++ {
		// Each wait doubles, less at most 20% jitter: never shorter than
		// the one before.
		if backoffs[i] <= backoffs[i-1] {
			t.Errorf("backoff %d is %s, not longer than %s", i, backoffs[i], backoffs[i-1])
		}
		if i < len(gaps) && gaps[i] <= gaps[i-1] {
			t.Errorf("gap between failures %d and %d is %s, not longer than the one before (%s)", i, i+1, gaps[i], gaps[i-1])
		}
	}
	// The log's times have a resolution of 1 ms (slog's text format), so
	// a gap read from two of them can be up to 1 ms short of the real one:
	// a restart 998 ms after a failure logged with a 998.26 ms backoff was
	// on time (a CI failure).
	const logResolution = time.Millisecond
	for i, g := range gaps {
		if g < backoffs[i]-logResolution {
			t.Errorf("restart %d came after %s, before its backoff %s", i+1, g, backoffs[i])
		}
	}

	st := a.mustStatus(t)
	var httpSt agent.ComponentStatus
	for _, c := range st.Components {
		if c.Name == "http" {
			httpSt = c
		}
	}
	if httpSt.Restarts < 3 || httpSt.State != agent.StateRunning {
		t.Errorf("http component %+v, want running after at least 3 restarts", httpSt)
	}
	mustITSend(t, pair.A, mustUDP(t, pair, perBatch, 100))
	sent += perBatch
	mustITWaitFor(t, 20*time.Second, "every frame written", func() (bool, string) {
		c := a.mustCapture(t, "cap")
		return c.Written == uint64(sent) && c.State == agent.CaptureRunning, fmt.Sprintf("%+v, want %d", c, sent)
	})
	if c := a.mustCapture(t, "cap"); c.Files != 0 || c.Matched != uint64(sent) {
		t.Errorf("capture restarted or miscounted during the http failures: %+v", c)
	}
	if err := a.mustStop(t, syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if got := itSumPackets(t, itFinishedFiles(t, out)); got != sent {
		t.Errorf("files hold %d packets, want %d", got, sent)
	}
}

// itFinalLine is the per-capture line the agent would log at stop with its
// final counters (see the report of these tests): when present, the
// counts are checked exactly.
var itFinalLine = regexp.MustCompile(`msg="capture stopped" capture=(\S+) .*seen=(\d+) matched=(\d+) captured=(\d+) ring_drops=(\d+) copy_failures=(\d+) handed=(\d+) written=(\d+) write_drops=(\d+)`)

// TestAgentSIGTERMUnderLoad: SIGTERM during a flood finishes every file
// cleanly and in time, and the counters in the files add up; SIGKILL
// leaves nothing attached.
func TestAgentSIGTERMUnderLoad(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			rtBefore := mustITRTObjects(t)
			pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
			xa, xb := mustITVeth(t, pair, "itxa", "itxb")
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "agent.yaml")
			listen := mustITFreePort(t)
			// The live sender floods the pair's veth, whose XDP is a
			// counter of the test's: detaching XDP while a live sender
			// runs has crashed kernels, so the agent captures there at TC
			// only. Its XDP captures are on the second veth, flooded with
			// SendRaw.
			caps := []itCapture{
				{Name: "tcin", Iface: pair.B.Link, Filter: "udp", Hook: "tc", SnapLen: 96, Dir: filepath.Join(dir, "tcin"), Rotate: "{size_mb: 5}"},
				{Name: "tczst", Iface: pair.B.Link, Hook: "tc", Direction: "inout", Dir: filepath.Join(dir, "tczst"), Compress: "zstd"},
				{Name: "xdpall", Iface: xb.Link, Hook: "xdp", Dir: filepath.Join(dir, "xdpall")},
				{Name: "xdppcap", Iface: xb.Link, Filter: "udp", Hook: "xdp", SnapLen: 128, Format: "pcap", Dir: filepath.Join(dir, "xdppcap")},
			}
			const stopTimeout = 20 * time.Second
			mustITWriteFile(t, cfgPath, itConfig{Listen: listen, StopTimeout: "20s", Captures: caps}.yaml())
			pass, err := trafficgen.AttachPass(pair.B)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pass.Close() })
			a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)
			a.mustWaitAllRunning(t, len(caps))

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := trafficgen.NewLiveSender(pair.A, itStreamFrame(t, pair.A, pair.B, 30))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SetFlows(64); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var live trafficgen.Result
			var liveErr error
			wg.Go(func() { live, liveErr = s.Run(ctx, 0, 0) })
			raw := 0
			batch := itMixedFrames(t, xa, xb, 0)
			wg.Go(func() {
				for ctx.Err() == nil {
					if err := trafficgen.SendRaw(xa, batch); err != nil {
						return
					}
					raw += len(batch)
				}
			})
			defer func() { cancel(); wg.Wait() }()
			mustITWaitFor(t, 30*time.Second, "traffic captured", func() (bool, string) {
				st := a.mustStatus(t)
				var few []string
				for _, c := range st.Captures {
					if c.Captured < 1000 {
						few = append(few, c.Name)
					}
				}
				return len(few) == 0, fmt.Sprint(few)
			})
			last := a.mustStatus(t)
			start := time.Now()
			err = a.mustStop(t, sig, stopTimeout+10*time.Second)
			took := time.Since(start)
			cancel()
			wg.Wait()
			t.Logf("%s after %v: live sent %d (rate 0, %d retries), raw sent %d; exit %v after %s", sig, live.Duration, live.Sent, live.Retries, raw, err, took)
			if liveErr != nil {
				t.Errorf("live sender: %v", liveErr)
			}
			if sig == syscall.SIGKILL {
				clsact := false
				for _, c := range last.Captures {
					clsact = clsact || c.Hook == "tc-clsact"
				}
				if clsact {
					// Before TCX (6.6) clsact filters outlive their
					// process, as documented: exactly the dead agent's
					// are left, and the next agent to attach there
					// removes them.
					mustITOnlyStaleClsact(t, pair, a.cmd.Process.Pid)
					b := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)
					b.mustWaitAllRunning(t, len(caps))
					if err := b.mustStop(t, syscall.SIGTERM, stopTimeout+10*time.Second); err != nil {
						t.Fatalf("the agent after the killed one: %v", err)
					}
				}
				mustITNothingAttached(t, pair, pass, xb)
				mustITNoNewRTObjects(t, rtBefore)
				return
			}
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
			if took > stopTimeout {
				t.Errorf("stop took %s, more than stop_timeout %s", took, stopTimeout)
			}
			finals := map[string][]string{}
			for _, l := range a.logLines(`msg="capture stopped"`) {
				if m := itFinalLine.FindStringSubmatch(l); m != nil {
					finals[m[1]] = m
				}
			}
			for _, c := range caps {
				t.Run(c.Name, func(t *testing.T) {
					if h := itHiddenFiles(t, c.Dir); len(h) > 0 {
						t.Errorf("temporary files left: %v", h)
					}
					files := itFinishedFiles(t, c.Dir)
					if len(files) == 0 {
						t.Fatal("no file")
					}
					packets := 0
					var isb pcapio.InterfaceStats
					for _, f := range files {
						check := f
						if strings.HasSuffix(f, ".zst") {
							// Wireshark 4.0 (Debian 12) misreads files of
							// several zstd frames, even ones the zstd CLI
							// makes: check the stream with zstd, the
							// content with capinfos.
							check = filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(f), ".zst"))
							if out, err := exec.Command("zstd", "-t", "-q", f).CombinedOutput(); err != nil {
								t.Errorf("zstd -t %s: %v\n%s", f, err, out)
							}
							if out, err := exec.Command("zstd", "-d", "-q", "-o", check, f).CombinedOutput(); err != nil {
								t.Fatalf("zstd -d %s: %v\n%s", f, err, out)
							}
						}
						n := itCapinfosPackets(t, check)
						pk, stats := itReadCapture(t, check)
						if len(pk) != n {
							t.Errorf("%s: pcapio reads %d packets, capinfos %d", f, len(pk), n)
						}
						packets += n
						if c.Format != "pcap" {
							s, ok := stats[0]
							if !ok {
								t.Errorf("%s has no interface statistics block", filepath.Base(f))
							}
							isb.Received += s.Received
							isb.Dropped += s.Dropped
							isb.Accepted += s.Accepted
						}
					}
					lc := itFindCapture(t, last, c.Name)
					t.Logf("%d files, %d packets; statistics blocks: seen %d matched %d lost %d; last status %+v",
						len(files), packets, isb.Received, isb.Accepted, isb.Dropped, lc)
					if uint64(packets) < lc.Written {
						t.Errorf("files hold %d packets, fewer than the %d written at the last status", packets, lc.Written)
					}
					if c.Format != "pcap" {
						// seen = matched + rejected; matched = captured +
						// lost; in the files: captured - write drops.
						if isb.Received < isb.Accepted || isb.Accepted < isb.Dropped || uint64(packets) > isb.Accepted-isb.Dropped {
							t.Errorf("statistics blocks do not add up: seen %d, matched %d, lost %d, packets in files %d", isb.Received, isb.Accepted, isb.Dropped, packets)
						}
						if isb.Received < lc.Seen || isb.Accepted < lc.Matched {
							t.Errorf("statistics blocks count less than the last status: %+v, status %+v", isb, lc)
						}
					}
					if c.Filter == "" && c.Format != "pcap" && isb.Received != isb.Accepted {
						// Without a filter every frame the hook ran on
						// for this capture matched.
						t.Errorf("no filter, yet the statistics blocks count %d seen and %d matched: seen counts frames after the capture left the program", isb.Received, isb.Accepted)
					}
					m, ok := finals[c.Name]
					if !ok {
						t.Errorf("no final counters logged at stop: want a line matching %s", itFinalLine)
						return
					}
					n := make([]uint64, len(m))
					for i := 2; i < len(m); i++ {
						n[i], _ = strconv.ParseUint(m[i], 10, 64)
					}
					seen, matched, captured, rdrops, cfail, handed, written, wdrops := n[2], n[3], n[4], n[5], n[6], n[7], n[8], n[9]
					t.Logf("final: seen %d matched %d captured %d ring_drops %d copy_failures %d handed %d written %d write_drops %d",
						seen, matched, captured, rdrops, cfail, handed, written, wdrops)
					if seen < matched || matched != captured+rdrops+cfail || handed != captured || written+wdrops != handed || uint64(packets) != written {
						t.Errorf("final counters do not add up: %s (packets in files %d)", m[0], packets)
					}
					if c.Format != "pcap" && (isb.Received != seen || isb.Accepted != matched || isb.Dropped != rdrops+cfail) {
						t.Errorf("statistics blocks %+v differ from the final counters %s", isb, m[0])
					}
				})
			}
			mustITNoNewRTObjects(t, rtBefore)
		})
	}
}

// mustITNothingAttached checks that no ringtap program stays on the pair's
// B veth (where only the test's own XDP counter may be) nor on xb.
func mustITNothingAttached(t *testing.T, pair *testbed.Pair, pass *trafficgen.XDPCounter, xb testbed.Host) {
	t.Helper()
	tcShow := func(dev, dir string) string {
		out, err := exec.Command("tc", "-n", pair.B.NSName, "filter", "show", "dev", dev, dir).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Cannot find") && !strings.Contains(string(out), "Invalid handle") {
			return fmt.Sprintf("tc filter show %s %s: %v: %s", dev, dir, err, out)
		}
		if strings.Contains(string(out), "rt_") || strings.Contains(string(out), "ringtap") {
			return strings.TrimSpace(string(out))
		}
		return ""
	}
	mustITWaitFor(t, 10*time.Second, "nothing of ringtap attached after SIGKILL", func() (bool, string) {
		var left []string
		for _, l := range testbedtest.MustAttached(t, pair.B) {
			if !strings.HasPrefix(l, "xdp prog ") {
				left = append(left, pair.B.Link+": "+l)
			}
		}
		left = append(left, itPrefixAll(xb.Link+": ", testbedtest.MustAttached(t, xb))...)
		out, _ := exec.Command("ip", "-n", pair.B.NSName, "-d", "link", "show", "dev", xb.Link).CombinedOutput()
		if strings.Contains(string(out), "xdp") || strings.Contains(string(out), "prog/xdp") {
			left = append(left, "ip link: "+strings.TrimSpace(string(out)))
		}
		for _, dev := range []string{pair.B.Link, xb.Link} {
			for _, dir := range []string{"ingress", "egress"} {
				if s := tcShow(dev, dir); s != "" {
					left = append(left, s)
				}
			}
		}
		return len(left) == 0, strings.Join(left, "; ")
	})
	if _, err := pass.Packets(); err != nil {
		t.Errorf("the test's XDP counter on %s is gone: %v", pair.B.Link, err)
	}
}

func itPrefixAll(p string, s []string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = p + s[i]
	}
	return out
}

var itPositioned = regexp.MustCompile(`\.yaml:(\d+):`)

// TestAgentBadConfig: a bad file is refused with its name and line, both
// by --check and by a running agent's reload, which then keeps its
// captures running unchanged.
func TestAgentBadConfig(t *testing.T) {
	skipInKernelMatrix(t, "config validation does not depend on the kernel")
	bad, err := filepath.Glob("../../testdata/agent/bad/*.yaml")
	if err != nil || len(bad) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	t.Run("check", func(t *testing.T) {
		for _, f := range bad {
			t.Run(filepath.Base(f), func(t *testing.T) {
				out, err := exec.Command(binPath, "agent", "--check", "--config", f).CombinedOutput()
				if err == nil {
					t.Fatalf("--check exits 0:\n%s", out)
				}
				if !regexp.MustCompile(regexp.QuoteMeta(f) + `:\d+:`).Match(out) {
					t.Errorf("message does not name %s:LINE:\n%s", f, out)
				}
			})
		}
	})
	t.Run("example", func(t *testing.T) {
		dir := t.TempDir()
		b, err := os.ReadFile("../../testdata/agent/example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		s := strings.NewReplacer("/var/lib/ringtap", dir, "/usr/local/bin/ringtap-index", "/bin/true", "/usr/local/bin/on-ringtap-stop", "/bin/true").Replace(string(b))
		path := filepath.Join(dir, "example.yaml")
		mustITWriteFile(t, path, s)
		out, err := exec.Command(binPath, "agent", "--check", "--config", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": ok: 2 captures on 2 interfaces") {
			t.Fatalf("--check of the example with existing paths: %v\n%s", err, out)
		}
	})
	t.Run("reload", func(t *testing.T) {
		testbedtest.RequirePrivileged(t)
		pair := testbedtest.MustNewPair(t, testbed.PairConfig{})
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "agent.yaml")
		listen := mustITFreePort(t)
		good := itConfig{Listen: listen, Captures: []itCapture{{Name: "keep", Iface: pair.B.Link, Filter: "udp", Dir: filepath.Join(dir, "keep")}}}
		mustITWriteFile(t, cfgPath, good.yaml())
		a := mustITStartAgent(t, cfgPath, listen, pair.B.NSPath, true)
		before := itFindCapture(t, a.mustWaitState(t, agent.CaptureRunning, "keep"), "keep")
		sent := uint64(0)
		send := func(n int) {
			mustITSend(t, pair.A, mustUDP(t, pair, n, 100))
			sent += uint64(n)
			mustITWaitFor(t, 20*time.Second, "frames written", func() (bool, string) {
				c := a.mustCapture(t, "keep")
				return c.Written == sent, fmt.Sprintf("written %d, want %d", c.Written, sent)
			})
		}
		send(10)
		for _, f := range bad {
			t.Run(filepath.Base(f), func(t *testing.T) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				mustITWriteFile(t, cfgPath, string(b))
				if a.mustReload(t) {
					t.Fatal("the agent applied a bad config")
				}
				rej := a.logLines("reload rejected")
				if len(rej) == 0 || !itPositioned.MatchString(rej[len(rej)-1]) || !strings.Contains(rej[len(rej)-1], cfgPath) {
					t.Errorf("no itPositioned rejection of %s: %v", cfgPath, rej)
				}
				send(3)
				c := a.mustCapture(t, "keep")
				if c.State != agent.CaptureRunning || c.CurrentFile != before.CurrentFile || c.Files != 0 {
					t.Errorf("capture changed by a rejected reload: %+v, before %+v", c, before)
				}
			})
		}
		// A good reload after all that applies.
		good.Captures = append(good.Captures, itCapture{Name: "added", Iface: pair.B.Link, Filter: "icmp", Hook: "tc", Dir: filepath.Join(dir, "added")})
		mustITWriteFile(t, cfgPath, good.yaml())
		if !a.mustReload(t) {
			t.Fatal("good reload rejected")
		}
		a.mustWaitState(t, agent.CaptureRunning, "keep", "added")
		send(5)
		if c := a.mustCapture(t, "keep"); c.CurrentFile != before.CurrentFile {
			t.Errorf("keep restarted by the good reload: %+v", c)
		}
		if err := a.mustStop(t, syscall.SIGTERM, 60*time.Second); err != nil {
			t.Fatalf("exit: %v", err)
		}
		if got := itSumPackets(t, itFinishedFiles(t, filepath.Join(dir, "keep"))); uint64(got) != sent {
			t.Errorf("keep's file holds %d packets, want %d", got, sent)
		}
	})
}

// skipInKernelMatrix skips a test in the kernel matrix (hack/kernels sets
// RINGTAP_KERNEL_MATRIX), for tests that check nothing about the kernel and
// take long under emulation: make test runs them on the host.
func skipInKernelMatrix(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("RINGTAP_KERNEL_MATRIX") != "" {
		t.Skipf("kernel matrix: %s; make test runs it on the host", why)
	}
}

// mustITOnlyStaleClsact checks that what a SIGKILLed agent left on the
// pair's interface is only clsact filters named after its pid.
func mustITOnlyStaleClsact(t *testing.T, pair *testbed.Pair, pid int) {
	t.Helper()
	name := fmt.Sprintf("ringtap:%d", pid)
	for _, dir := range []string{"ingress", "egress"} {
		out, err := exec.Command("tc", "-n", pair.B.NSName, "filter", "show", "dev", pair.B.Link, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("tc filter show %s: %v\n%s", dir, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.Contains(line, " bpf ") && strings.Contains(line, "handle") && !strings.Contains(line, name) {
				t.Errorf("after SIGKILL, %s holds a filter that is not the killed agent's (%s): %s", dir, name, line)
			}
		}
	}
}
