//go:build linux

package main

// Helpers of the capture-job end-to-end tests (job_e2e_test.go): a
// console in its own network namespace, devices (an agent's namespace with
// the traffic link the jobs capture, tap0, and a management link to the
// console, so that the capture sees only the test's frames), and the jobs
// admin API.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// jobTap is the name of every device's captured link: one job names one
// interface list for all its devices.
const jobTap = "tap0"

// ---- the bed: a console and its devices ----

// jobBed is a console serving in cpair.A, and devices enrolled with it.
type jobBed struct {
	t     *testing.T
	tmp   string
	cpair *testbed.Pair
	con   *jobConsole
	devs  []*jobDevice
}

// jobConsole is a `ringtap-console serve` and how to restart it.
type jobConsole struct {
	data, fingerprint string
	adminURL          string
	args              []string
	admin             *ceAdmin
	proc              *ceProc
}

// mustJobBed inits and serves a console (with serveFlags added to
// `serve`) and enrolls n devices; with agents, each device's agent runs.
func mustJobBed(t *testing.T, n int, agents bool, serveFlags ...string) *jobBed {
	t.Helper()
	testbedtest.RequirePrivileged(t)
	b := &jobBed{t: t, tmp: t.TempDir()}
	b.cpair = testbedtest.MustNewPair(t, testbed.PairConfig{Name: "rtjc"})
	bin := mustConsoleBin(t)
	data := filepath.Join(b.tmp, "console")
	out, err := exec.Command(bin, "init", "--data", data, "--json").Output()
	if err != nil {
		t.Fatalf("ringtap-console init: %v", err)
	}
	var ir struct {
		AdminToken    string `json:"admin_token"`
		CAFingerprint string `json:"ca_fingerprint"`
	}
	if err := json.Unmarshal(out, &ir); err != nil || ir.AdminToken == "" {
		t.Fatalf("ringtap-console init --json: %q: %v", out, err)
	}
	ip := b.cpair.A.IPv4.String()
	b.con = &jobConsole{data: data, fingerprint: ir.CAFingerprint, adminURL: "https://" + ip + ":8444",
		args: append([]string{"serve", "--data", data, "--agent-listen", ip + ":8443", "--admin-listen", ip + ":8444", "--hosts", ip}, serveFlags...)}
	ca, err := pki.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	b.con.admin = &ceAdmin{t: t, token: ir.AdminToken, base: b.con.adminURL,
		client: ceClient(b.cpair.A, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool()})}
	b.mustServe()
	for i := range n {
		d := b.mustDevice(i)
		if agents {
			d.mustStartAgent(t)
		}
	}
	return b
}

// mustServe starts the console on its data directory and ports and waits
// for its admin API.
func (b *jobBed) mustServe() {
	t := b.t
	t.Helper()
	c := b.con
	c.proc = mustCEStart(t, "console", b.cpair.A, mustConsoleBin(t), c.args...)
	mustITWaitFor(t, 30*time.Second, "the console's admin API", func() (bool, string) {
		if c.proc.exited() {
			t.Fatalf("console exited: %v\n%s", c.proc.err, c.proc.log)
		}
		req, _ := http.NewRequest("GET", c.adminURL+"/api/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+c.admin.token)
		resp, err := c.admin.client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// mustKillConsole SIGKILLs the console and waits for it to be gone.
func (b *jobBed) mustKillConsole() {
	b.t.Helper()
	mustJobKill(b.t, b.con.proc)
}

func mustJobKill(t *testing.T, p *ceProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10s after SIGKILL", p.name)
	}
}

// streamClient is the admin client without its timeout, for /live.
func (b *jobBed) streamClient() *http.Client {
	c := *b.con.admin.client
	c.Timeout = 0
	return &c
}

// ---- devices ----

// jobDevice is an enrolled device: its agent runs in pair.B, where the
// captured link is tap0 (frames come from pair.A) and "mgmt" leads to
// the console.
type jobDevice struct {
	name       string
	pair       *testbed.Pair
	tap        testbed.Host // pair.B as renamed: the job's interface
	state, cfg string
	id         string
	agent      *ceAgent
}

// mustDevice makes device i: its two namespaces, the management link
// from the console's namespace (198.19.i+1.0/24, a /32 route to the
// console), and its enrollment with an install key of its own.
func (b *jobBed) mustDevice(i int) *jobDevice {
	t := b.t
	t.Helper()
	d := &jobDevice{name: fmt.Sprintf("dev%d", i)}
	d.pair = testbedtest.MustNewPair(t, testbed.PairConfig{Name: fmt.Sprintf("rtj%d", i)})
	d.tap = d.pair.B
	mustITLinkDo(t, d.pair.B, func() error { return itRenameLink(d.pair.B.Link, jobTap) })
	d.tap.Link = jobTap

	consoleIP := net.IP(b.cpair.A.IPv4.AsSlice())
	cAddr := netip.AddrFrom4([4]byte{198, 19, byte(i + 1), 1})
	dAddr := netip.AddrFrom4([4]byte{198, 19, byte(i + 1), 2})
	cLink := fmt.Sprintf("rtjm%d", i)
	addr := func(l netlink.Link, a netip.Addr) error {
		return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(24, 32)}})
	}
	mustITLinkDo(t, b.cpair.A, func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cLink}, PeerName: "mgmt", PeerNamespace: netlink.NsFd(int(d.pair.B.NS))}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("add veth %s/mgmt: %w", cLink, err)
		}
		l, err := netlink.LinkByName(cLink)
		if err != nil {
			return err
		}
		if err := addr(l, cAddr); err != nil {
			return fmt.Errorf("address %s: %w", cLink, err)
		}
		return netlink.LinkSetUp(l)
	})
	mustITLinkDo(t, d.pair.B, func() error {
		l, err := netlink.LinkByName("mgmt")
		if err != nil {
			return err
		}
		if err := addr(l, dAddr); err != nil {
			return fmt.Errorf("address mgmt: %w", err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK,
			Dst: &net.IPNet{IP: consoleIP, Mask: net.CIDRMask(32, 32)}, Src: net.IP(dAddr.AsSlice())})
	})

	d.state, d.cfg = filepath.Join(b.tmp, d.name+"-state"), filepath.Join(b.tmp, d.name+".yaml")
	mustITWriteFile(t, d.cfg, "http:\n  listen: 127.0.0.1:19273\n")
	before := b.mustDeviceIDs()
	var key struct {
		Key           string `json:"key"`
		EnrollCommand string `json:"enroll_command"`
	}
	b.con.admin.mustJSON("POST", "/api/v1/install-keys", map[string]string{"expires_in": "1h", "note": d.name}, nil, http.StatusCreated, &key)
	args := strings.Fields(key.EnrollCommand)
	if len(args) < 3 || args[0] != "ringtap" {
		t.Fatalf("enroll_command %q", key.EnrollCommand)
	}
	enroll := mustCEStart(t, "enroll "+d.name, d.pair.B, binPath, append(args[1:], "--state", d.state)...)
	<-enroll.done
	if enroll.err != nil {
		t.Fatalf("%s: %v\n%s", key.EnrollCommand, enroll.err, enroll.log)
	}
	for id := range b.mustDeviceIDs() {
		if !before[id] {
			d.id = id
		}
	}
	if d.id == "" {
		t.Fatalf("no new device after enrolling %s", d.name)
	}
	b.devs = append(b.devs, d)
	return d
}

func (b *jobBed) mustDeviceIDs() map[string]bool {
	b.t.Helper()
	var devs struct {
		Devices []struct {
			ID string `json:"id"`
		} `json:"devices"`
	}
	b.con.admin.mustJSON("GET", "/api/v1/devices", nil, nil, 200, &devs)
	ids := map[string]bool{}
	for _, d := range devs.Devices {
		ids[d.ID] = true
	}
	return ids
}

// mustStartAgent starts the device's agent and waits for its /healthz.
func (d *jobDevice) mustStartAgent(t *testing.T) {
	t.Helper()
	a := &ceAgent{client: ceClient(d.pair.B, nil), url: "http://127.0.0.1:19273"}
	a.proc = mustCEStart(t, "agent "+d.name, d.pair.B, binPath, "agent", "--config", d.cfg, "--state", d.state)
	mustITWaitFor(t, 30*time.Second, d.name+"'s agent /healthz", func() (bool, string) {
		if a.proc.exited() {
			t.Fatalf("agent %s exited: %v\n%s", d.name, a.proc.err, a.proc.log)
		}
		resp, err := a.client.Get(a.url + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	d.agent = a
}

// ---- frames ----

// jobFrames is a mix sent to device i: UDP to port 1000 and from it, ICMP,
// TCP to port 1000, ARP, of several sizes, and i+1 more UDP frames to
// port 1000, so that each device's selection differs. The addresses are
// no device's: the device's kernel answers none of them.
func jobFrames(t *testing.T, d *jobDevice, i int) [][]byte {
	t.Helper()
	frames := itMixedFrames(t, d.pair.A, d.tap, byte(16*i))
	for k := range i + 1 {
		frames = append(frames, trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{
			SrcMAC: d.pair.A.MAC, DstMAC: d.tap.MAC,
			Src: netip.MustParseAddr("198.18.7.1"), Dst: netip.MustParseAddr("198.18.7.2"),
			SrcPort: 6000 + uint16(k), DstPort: 1000, Size: 300 + 50*k, Seed: byte(i + k)})))
	}
	return frames
}

// jobUDP is n UDP frames to port 1000 (matching the jobs' filters) of
// size bytes, each with its own payload.
func jobUDP(d *jobDevice, n, size int, seed byte) [][]byte {
	out := make([][]byte, n)
	for k := range out {
		out[k] = trafficgen.Must(trafficgen.BuildUDP4(trafficgen.FrameOpts{
			SrcMAC: d.pair.A.MAC, DstMAC: d.tap.MAC,
			Src: netip.MustParseAddr("198.18.8.1"), Dst: netip.MustParseAddr("198.18.8.2"),
			SrcPort: 7000 + uint16(k%1000), DstPort: 1000, Size: size, Seed: seed + byte(k)}))
	}
	return out
}

// jobStream sends frames from d's traffic side every interval until stop,
// which returns the frames sent.
func jobStream(t *testing.T, d *jobDevice, frames [][]byte, every time.Duration) (stop func() [][]byte) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	var sent [][]byte
	var serr error
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if err := trafficgen.SendRaw(d.pair.A, frames); err != nil {
				serr = err
				return
			}
			sent = append(sent, frames...)
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() [][]byte {
		once.Do(func() { close(quit) })
		<-done
		if serr != nil {
			t.Errorf("send to %s: %v", d.name, serr)
		}
		return sent
	}
}

// ---- the jobs admin API ----

type jobView struct {
	ID                int64      `json:"id"`
	CreatedAt         time.Time  `json:"created_at"`
	ExpiresAt         time.Time  `json:"expires_at"`
	CancelRequestedAt *time.Time `json:"cancel_requested_at"`
	Devices           []string   `json:"devices"`
	Interfaces        []string   `json:"interfaces"`
	Filter            string     `json:"filter"`
	SnapLen           uint32     `json:"snaplen"`
	Duration          string     `json:"duration"`
	MaxPackets        uint64     `json:"max_packets"`
	MaxBytes          uint64     `json:"max_bytes"`
	Destination       string     `json:"destination"`
	State             string     `json:"state"`
	Runs              []runView  `json:"runs"`
}

type runView struct {
	Device      string    `json:"device"`
	Hostname    string    `json:"hostname"`
	State       string    `json:"state"`
	Packets     uint64    `json:"packets"`
	Bytes       uint64    `json:"bytes"`
	Drops       uint64    `json:"drops"`
	Size        uint64    `json:"size"`
	Error       string    `json:"error"`
	UpdatedAt   time.Time `json:"updated_at"`
	Transitions []struct {
		State  string    `json:"state"`
		At     time.Time `json:"at"`
		Reason string    `json:"reason"`
	} `json:"transitions"`
	Result *struct {
		Location string `json:"location"`
		Size     int64  `json:"size"`
		SHA256   string `json:"sha256"`
		Download string `json:"download"`
	} `json:"result"`
	Live string `json:"live"`
}

// ended reports whether the run is in a terminal state.
func (r runView) ended() bool {
	switch r.State {
	case "finished", "failed", "canceled", "expired":
		return true
	}
	return false
}

func (r runView) states() []string {
	var s []string
	for _, tr := range r.Transitions {
		s = append(s, tr.State)
	}
	return s
}

// last is the run's last transition (the zero one when it has none).
func (r runView) last() (state string, at time.Time, reason string) {
	if len(r.Transitions) == 0 {
		return "", time.Time{}, ""
	}
	tr := r.Transitions[len(r.Transitions)-1]
	return tr.State, tr.At, tr.Reason
}

func (r runView) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

func (j jobView) run(t *testing.T, device string) runView {
	t.Helper()
	for _, r := range j.Runs {
		if r.Device == device {
			return r
		}
	}
	t.Fatalf("job %d has no run of device %s: %+v", j.ID, device, j.Runs)
	return runView{}
}

// jobRequest is the body of POST /api/v1/jobs for devs on tap0.
func jobRequest(filter, duration string, devs ...*jobDevice) map[string]any {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.id
	}
	return map[string]any{"devices": ids, "interfaces": []string{jobTap}, "filter": filter, "duration": duration}
}

func (b *jobBed) mustCreateJob(req map[string]any) jobView {
	b.t.Helper()
	var j jobView
	b.con.admin.mustJSON("POST", "/api/v1/jobs", req, nil, http.StatusCreated, &j)
	if j.ID == 0 || len(j.Runs) != len(req["devices"].([]string)) {
		b.t.Fatalf("POST /api/v1/jobs: %+v, want an id and one run per device", j)
	}
	for _, r := range j.Runs {
		if r.State != "queued" {
			b.t.Errorf("new job's run %s is %s, want queued", r.Device, r.State)
		}
	}
	return j
}

func (b *jobBed) mustJob(id int64) jobView {
	b.t.Helper()
	var j jobView
	b.con.admin.mustJSON("GET", fmt.Sprintf("/api/v1/jobs/%d", id), nil, nil, 200, &j)
	return j
}

// mustWaitRun waits for device's run of job id to satisfy cond.
func (b *jobBed) mustWaitRun(id int64, device string, within time.Duration, what string, cond func(runView) bool) runView {
	b.t.Helper()
	var r runView
	mustITWaitFor(b.t, within, fmt.Sprintf("job %d's run on %s: %s", id, device, what), func() (bool, string) {
		r = b.mustJob(id).run(b.t, device)
		return cond(r), r.String()
	})
	return r
}

func inState(s string) func(runView) bool {
	return func(r runView) bool { return r.State == s }
}

// mustTransitions checks the run went through want in order, each at a
// time not before the previous one nor the job's creation.
func mustTransitions(t *testing.T, j jobView, r runView, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, r.states()); diff != "" {
		t.Errorf("job %d's run on %s: transitions (-want +got):\n%s\n%s", j.ID, r.Device, diff, r)
	}
	prev := j.CreatedAt
	for _, tr := range r.Transitions {
		if tr.At.IsZero() || tr.At.Before(prev) {
			t.Errorf("job %d's run on %s: %s at %v, after %v (job created %v)", j.ID, r.Device, tr.State, tr.At, prev, j.CreatedAt)
		}
		prev = tr.At
	}
}

// mustNoRepeats checks that no state appears twice in the run's
// transitions.
func mustNoRepeats(t *testing.T, r runView) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range r.states() {
		if seen[s] {
			t.Errorf("run on %s entered %s twice: %v", r.Device, s, r.states())
		}
		seen[s] = true
	}
}

// mustDownload downloads the run's result through the admin API, checks
// the answer's headers, size and digest against the run's result, and
// returns the file's path.
func (b *jobBed) mustDownload(j jobView, r runView) string {
	t := b.t
	t.Helper()
	if r.Result == nil {
		t.Fatalf("job %d's run on %s has no result: %s", j.ID, r.Device, r)
	}
	want := fmt.Sprintf("/api/v1/jobs/%d/runs/%s/pcap", j.ID, r.Device)
	if r.Result.Download != want || r.Result.Location != "console" {
		t.Errorf("result %+v, want location console, download %s", *r.Result, want)
	}
	code, raw, hdr := b.con.admin.do("GET", want, nil, nil)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", want, code, raw)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/x-pcapng" {
		t.Errorf("GET %s: Content-Type %q, want application/x-pcapng", want, ct)
	}
	if cd, w := hdr.Get("Content-Disposition"), fmt.Sprintf(`attachment; filename="job-%d-%s.pcapng"`, j.ID, r.Hostname); cd != w {
		t.Errorf("GET %s: Content-Disposition %q, want %q", want, cd, w)
	}
	sum := sha256.Sum256(raw)
	if int64(len(raw)) != r.Result.Size || hex.EncodeToString(sum[:]) != r.Result.SHA256 {
		t.Errorf("GET %s: %d bytes, sha256 %x; the result says %d bytes, %s", want, len(raw), sum, r.Result.Size, r.Result.SHA256)
	}
	path := filepath.Join(b.tmp, fmt.Sprintf("job-%d-%s.pcapng", j.ID, r.Device))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// jobPackets reads a pcapng file with pcapio.
func jobPackets(t *testing.T, path string) []pcapio.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapio.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out []pcapio.Packet
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: packet %d: %v", path, len(out), err)
		}
		p.Data = bytes.Clone(p.Data)
		out = append(out, p)
	}
}

// mustHoldExactly checks that the pcapng at path holds exactly what
// tcpdump's expr selects of sent, in order, cut to snaplen, with the
// original lengths; capinfos must agree on the count.
func mustHoldExactly(t *testing.T, path string, sent [][]byte, expr string, snaplen int) {
	t.Helper()
	want := itTcpdumpSelect(t, sent, expr, 1<<20)
	got := jobPackets(t, path)
	if n := itCapinfosPackets(t, path); n != len(want) {
		t.Errorf("capinfos counts %d packets in %s, tcpdump %q selects %d of the %d sent", n, path, expr, len(want), len(sent))
	}
	if len(got) != len(want) {
		t.Fatalf("%s holds %d packets, tcpdump %q selects %d of the %d sent", path, len(got), expr, len(want), len(sent))
	}
	// Frames captured on different CPUs may interleave out of send order
	// (README, per-CPU rings): compare them as sets, each frame once.
	type frame struct {
		data []byte
		wire uint32
	}
	gs, ws := make([]frame, len(got)), make([]frame, len(want))
	for i := range want {
		gs[i] = frame{got[i].Data, got[i].WireLen}
		ws[i] = frame{want[i][:min(len(want[i]), snaplen)], uint32(len(want[i]))}
	}
	order := func(fs []frame) {
		slices.SortFunc(fs, func(a, b frame) int {
			if c := bytes.Compare(a.data, b.data); c != 0 {
				return c
			}
			return int(a.wire) - int(b.wire)
		})
	}
	order(gs)
	order(ws)
	for i := range ws {
		if !bytes.Equal(gs[i].data, ws[i].data) || gs[i].wire != ws[i].wire {
			t.Errorf("%s: the %d-th frame in byte order is %d of %d bytes %x, want %d of %d bytes %x", path, i, len(gs[i].data), gs[i].wire, gs[i].data, len(ws[i].data), ws[i].wire, ws[i].data)
		}
	}
}

// ---- what stays attached ----

// jobAttached lists what is attached to d's tap0: XDP, TCX and clsact
// filters as testbedtest finds them, and what `ip -d link`, `tc filter
// show` and `bpftool net` say.
func jobAttached(t *testing.T, d *jobDevice) []string {
	t.Helper()
	left := testbedtest.MustAttached(t, d.tap)
	ns := d.pair.B.NSName
	if out, err := exec.Command("ip", "-n", ns, "-d", "link", "show", "dev", jobTap).CombinedOutput(); err != nil {
		t.Fatalf("ip -d link show: %v\n%s", err, out)
	} else if strings.Contains(string(out), "prog/xdp") || strings.Contains(string(out), " xdp") {
		left = append(left, "ip -d link: "+strings.TrimSpace(string(out)))
	}
	for _, dir := range []string{"ingress", "egress"} {
		out, err := exec.Command("tc", "-n", ns, "filter", "show", "dev", jobTap, dir).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Cannot find") && !strings.Contains(string(out), "Invalid handle") {
			t.Fatalf("tc filter show %s: %v\n%s", dir, err, out)
		}
		if s := strings.TrimSpace(string(out)); s != "" && err == nil {
			left = append(left, "tc "+dir+": "+s)
		}
	}
	if _, err := exec.LookPath("bpftool"); err == nil {
		out, err := exec.Command("ip", "netns", "exec", ns, "bpftool", "net", "show", "dev", jobTap).CombinedOutput()
		if err != nil {
			t.Fatalf("bpftool net show: %v\n%s", err, out)
		}
		for l := range strings.SplitSeq(string(out), "\n") {
			if strings.Contains(l, jobTap+"(") {
				left = append(left, "bpftool net: "+strings.TrimSpace(l))
			}
		}
	}
	return left
}

// ---- the agent's side ----

// mustSpoolEmpty waits until the device's jobs directory holds nothing of
// job id (the runner removes a run's directory once the console has its
// end and result).
func (d *jobDevice) mustSpoolEmpty(t *testing.T, id int64) {
	t.Helper()
	dir := filepath.Join(d.state, "jobs", fmt.Sprint(id))
	mustITWaitFor(t, 5*time.Second, d.name+"'s "+dir+" removed", func() (bool, string) {
		_, err := os.Stat(dir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}

// mustJobMetrics waits until each of want's lines ("ringtap_jobs_running
// 0") is in the agent's /metrics.
func (d *jobDevice) mustJobMetrics(t *testing.T, within time.Duration, want ...string) {
	t.Helper()
	var body string
	mustITWaitFor(t, within, d.name+"'s job metrics", func() (bool, string) {
		resp, err := d.agent.client.Get(d.agent.url + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		body = string(raw)
		lines := map[string]bool{}
		for l := range strings.SplitSeq(body, "\n") {
			lines[l] = true
		}
		for _, w := range want {
			if !lines[w] {
				return false, "no line " + w
			}
		}
		return true, ""
	})
}
