package console

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/livestream"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// liveClientOf follows the live stream of a run as an admin: an HTTP
// client with no timeout (the stream lasts as long as the run). A
// receive buffer other than 0 makes it a slow reader: its socket takes
// that much, and it reads nothing until read.
func (c *testConsole) liveClientOf(rcvbuf int) *http.Client {
	c.t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var err error
			cerr := rc.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(cerr, err)
		}
	}
	cl := &http.Client{Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: c.ca.Pool(), MinVersion: tls.VersionTLS13},
	}}
	c.t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// mustOpenLive opens the live stream of device's run of job id; the
// answer's body is the stream.
func (c *testConsole) mustOpenLive(cl *http.Client, id int64, device string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.srv.AdminURL()+jobPath(id, "/runs/"+device+"/live"), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := cl.Do(req)
	if err != nil {
		c.t.Fatalf("open live stream: %v", err)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-pcapng" {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("open live stream: %d %q %s, want 200 application/x-pcapng", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp
}

// pushResult is the answer to a live push.
type pushResult struct {
	code int
	body string
	err  error
}

// startPush pushes body as device a's live stream of job id, in the
// background.
func (a *agentClient) startPush(id int64, body io.Reader) <-chan pushResult {
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: a.m.TLSConfig()}}
	a.t.Cleanup(cl.CloseIdleConnections)
	c := make(chan pushResult, 1)
	go func() {
		req, _ := http.NewRequest("POST", a.url+jobapi.Path(jobapi.LivePath, id), body)
		req.Header.Set("Content-Type", "application/x-pcapng")
		resp, err := cl.Do(req)
		if err != nil {
			c <- pushResult{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c <- pushResult{code: resp.StatusCode, body: string(b)}
	}()
	return c
}

func mustPushed(t *testing.T, what string, c <-chan pushResult, want int) pushResult {
	t.Helper()
	select {
	case r := <-c:
		if r.err != nil || r.code != want {
			t.Fatalf("%s: %d %s %v, want %d", what, r.code, r.body, r.err, want)
		}
		return r
	case <-time.After(time.Minute):
		t.Fatalf("%s: no answer", what)
		return pushResult{}
	}
}

// livePacket is the i-th packet the tests push: 1400 bytes.
func livePacket(i int) pcapio.Packet {
	data := bytes.Repeat([]byte{byte(i)}, 1400)
	copy(data, strconv.Itoa(i))
	return pcapio.Packet{Timestamp: 1_700_000_000_000_000_000 + int64(i)*1000, WireLen: 1400, Direction: pcapio.DirInbound, Data: data}
}

// mustReadPackets reads every packet of a pcapng stream.
func mustReadPackets(t *testing.T, what string, data []byte) []pcapio.Packet {
	t.Helper()
	r, err := pcapio.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var ps []pcapio.Packet
	for {
		var p pcapio.Packet
		err := r.Next(&p)
		if err == io.EOF {
			return ps
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", what, len(ps), err)
		}
		p.Data = bytes.Clone(p.Data)
		ps = append(ps, p)
	}
}

// statComments are the comments of a stream's statistics blocks, read
// with gopacket's pcapng reader.
func statComments(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.NgReaderOptions{
		StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) {
			if s.Comment != "" {
				out = append(out, s.Comment)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return out
		}
	}
}

var capinfosCount = regexp.MustCompile(`(?m)^Number of packets:\s+(\d+)`)

// mustToolCount counts the packets of a stream with tshark and capinfos,
// which must agree.
func mustToolCount(t *testing.T, data []byte) int {
	t.Helper()
	for _, tool := range []string{"tshark", "capinfos"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("%s not in PATH", tool)
		}
	}
	path := filepath.Join(t.TempDir(), "live.pcapng")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	n := strings.Count(string(out), "\n")
	info, err := exec.Command("capinfos", "-M", path).Output()
	if err != nil {
		t.Fatalf("capinfos: %v", err)
	}
	m := capinfosCount.FindSubmatch(info)
	if m == nil {
		t.Fatalf("capinfos printed no packet count:\n%s", info)
	}
	if c, _ := strconv.Atoi(string(m[1])); c != n {
		t.Errorf("tshark reads %d packets, capinfos counts %d", n, c)
	}
	return n
}

var dropComment = regexp.MustCompile(`^ringtap live stream: (\d+) packets dropped because the reader was too slow; the job's file is complete$`)

// TestLive: an agent pushes a run's stream; a fast admin client gets
// every packet, a slow one loses packets (never the header) and its
// stream says how many in a statistics block. The streams end when the
// run ends; a run that ended is refused.
func TestLive(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "machine-1")
	dev := a.m.DeviceID()
	job := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}, "duration": "10m"})

	fastResp := c.mustOpenLive(c.liveClientOf(0), job.ID, dev)
	slowResp := c.mustOpenLive(c.liveClientOf(4096), job.ID, dev)
	fastDone := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(fastResp.Body); fastDone <- b }()

	claim := newClaim(t)
	mustClaim(t, a, job.ID, claim)
	code, body := a.post(jobapi.Path(jobapi.ProgressPath, job.ID), jobapi.ProgressRequest{Claim: claim, State: "running"})
	if rc := mustControl(t, "progress", code, body); !rc.LiveWanted {
		t.Fatalf("progress with two live clients: %+v, want live_wanted", rc)
	}

	// The push: what the job runner does, with a buffer that never drops,
	// so that what the slow client loses is the console's doing.
	enc := livestream.NewEncoder([]pcapio.Interface{{Name: "eth0", LinkType: 1}}, livestream.EncoderOptions{BufferBytes: 256 << 20, Application: "ringtap test"})
	pr, pw := io.Pipe()
	encDone := make(chan error, 1)
	go func() { _, err := enc.WriteTo(pw); pw.CloseWithError(err); encDone <- err }()
	push := a.startPush(job.ID, pr)
	// 17 MB: more than the slow client's queue and socket hold. Paced at
	// about 6 MB/s, as a busy capture would be: the fast client's 4 MiB
	// queue then rides out a stall of 0.7 s of its reader (a machine
	// running other tests), where a burst at memory speed would have
	// "fast" mean "never descheduled".
	const n, chunk = 12000, 200
	for i := range n {
		p := livePacket(i)
		if err := enc.WritePacket(&p); err != nil {
			t.Fatal(err)
		}
		if i%chunk == chunk-1 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	enc.Close()
	if err := <-encDone; err != nil {
		t.Fatalf("encoder: %v", err)
	}
	mustPushed(t, "live push", push, http.StatusNoContent)
	if enc.Dropped() != 0 {
		t.Fatalf("the encoder dropped %d packets", enc.Dropped())
	}

	// The streams go on until the run ends.
	select {
	case <-fastDone:
		t.Fatal("the live stream ended before the run")
	case <-time.After(200 * time.Millisecond):
	}
	code, body = a.post(jobapi.Path(jobapi.FinishPath, job.ID), jobapi.FinishRequest{Claim: claim, State: "failed", Error: "test over"})
	mustControl(t, "finish", code, body)
	var fast []byte
	select {
	case fast = <-fastDone:
	case <-time.After(time.Minute):
		t.Fatal("the fast client's stream did not end with the run")
	}
	slow, err := io.ReadAll(slowResp.Body)
	if err != nil {
		t.Fatalf("read the slow client's stream: %v", err)
	}

	fastPackets := mustReadPackets(t, "fast client", fast)
	if len(fastPackets) != n {
		t.Errorf("fast client got %d packets, want %d", len(fastPackets), n)
	}
	for i, p := range fastPackets {
		if want := livePacket(i); !bytes.Equal(p.Data, want.Data) || p.Timestamp != want.Timestamp {
			t.Fatalf("fast client's packet %d is not the %dth pushed", i, i)
		}
	}
	if got := mustToolCount(t, fast); got != n {
		t.Errorf("tshark reads %d packets of the fast client's stream, want %d", got, n)
	}
	for _, cm := range statComments(t, fast) {
		t.Errorf("fast client's stream says %q", cm)
	}

	slowPackets := mustReadPackets(t, "slow client", slow)
	lost := n - len(slowPackets)
	if lost == 0 {
		t.Fatalf("the slow client lost no packet of %d: the test wants it to", n)
	}
	t.Logf("the slow client lost %d of %d packets", lost, n)
	comments := statComments(t, slow)
	if len(comments) == 0 {
		t.Fatal("the slow client's stream has no statistics block that says it lost packets")
	}
	m := dropComment.FindStringSubmatch(comments[len(comments)-1])
	if m == nil || m[1] != strconv.Itoa(lost) {
		t.Errorf("the slow client lost %d packets; its last statistics say %q", lost, comments[len(comments)-1])
	}
	if got := mustToolCount(t, slow); got != len(slowPackets) {
		t.Errorf("tshark reads %d packets of the slow client's stream, want %d", got, len(slowPackets))
	}

	// The run has ended: no live stream, no push.
	code, body = c.do("GET", jobPath(job.ID, "/runs/"+dev+"/live"), nil)
	mustStatus(t, "live stream of an ended run", code, body, http.StatusConflict, fmt.Sprintf("download /api/v1/jobs/%d/runs/%s/pcap instead", job.ID, dev))
	r := mustPushed(t, "push to an ended run", a.startPush(job.ID, bytes.NewReader(nil)), http.StatusGone)
	mustStatus(t, "push to an ended run", r.code, []byte(r.body), http.StatusGone, "has ended")
	if c.srv.live.wanted(job.ID, dev) {
		t.Error("a live stream is still wanted after the run ended")
	}
}

// TestLiveReplace: a newer push of a run ends the older one, and the
// client goes on with the newer one's stream.
func TestLiveReplace(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "machine-1")
	dev := a.m.DeviceID()
	job := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})
	resp := c.mustOpenLive(c.liveClientOf(0), job.ID, dev)
	claim := newClaim(t)
	mustClaim(t, a, job.ID, claim)

	ifaces := []pcapio.Interface{{Name: "eth0", LinkType: 1}}
	older := livestream.NewEncoder(ifaces, livestream.EncoderOptions{})
	opr, opw := io.Pipe()
	go func() { _, err := older.WriteTo(opw); opw.CloseWithError(err) }()
	defer older.Close()
	olderPush := a.startPush(job.ID, opr)
	p := livePacket(0)
	older.WritePacket(&p)
	r, err := pcapio.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got pcapio.Packet
	if err := r.Next(&got); err != nil || got.Timestamp != p.Timestamp {
		t.Fatalf("the client did not get the older push's packet: %v", err)
	}

	newer := livestream.NewEncoder(ifaces, livestream.EncoderOptions{})
	npr, npw := io.Pipe()
	go func() { _, err := newer.WriteTo(npw); npw.CloseWithError(err) }()
	newerPush := a.startPush(job.ID, npr)
	select {
	case res := <-olderPush:
		if res.err == nil && res.code != http.StatusConflict {
			t.Errorf("the older push: %d %s, want 409 (or a broken connection)", res.code, res.body)
		}
	case <-time.After(time.Minute):
		t.Fatal("the older push was not ended by the newer")
	}
	p = livePacket(1)
	newer.WritePacket(&p)
	for {
		if err := r.Next(&got); err != nil {
			t.Fatalf("the client did not get the newer push's packet: %v", err)
		}
		if got.Timestamp == p.Timestamp {
			break
		}
	}
	if len(r.Interfaces()) != 2 {
		t.Errorf("the client's stream describes %d interfaces, want the older section's and the newer's", len(r.Interfaces()))
	}
	newer.Close()
	mustPushed(t, "newer push", newerPush, http.StatusNoContent)
}

// TestLiveRefused: the live endpoints check the job, the run and who
// asks.
func TestLiveRefused(t *testing.T) {
	c := mustJobConsole(t, backends[0].open(t), nil, "", JobPolicy{})
	a := c.mustEnroll("sensor-1", "machine-1")
	other := c.mustEnroll("sensor-2", "machine-2")
	dev := a.m.DeviceID()
	job := c.mustCreateJob(map[string]any{"devices": []string{dev}, "interfaces": []string{"eth0"}})

	for _, tc := range []struct {
		name, path string
		code       int
		want       string
	}{
		{"job not a number", "/api/v1/jobs/x/runs/" + dev + "/live", http.StatusNotFound, "job ids are numbers"},
		{"no such job", jobPath(job.ID+1, "/runs/"+dev+"/live"), http.StatusNotFound, "no job"},
		{"no run on the device", jobPath(job.ID, "/runs/"+other.m.DeviceID()+"/live"), http.StatusNotFound, "has no run on device"},
	} {
		t.Run("client "+tc.name, func(t *testing.T) {
			code, body := c.do("GET", tc.path, nil)
			mustStatus(t, tc.path, code, body, tc.code, tc.want)
		})
	}
	code, body := c.doToken("", "GET", jobPath(job.ID, "/runs/"+dev+"/live"), nil)
	mustStatus(t, "live stream without a token", code, body, http.StatusUnauthorized, "no admin token")

	stream := func() io.Reader {
		var b bytes.Buffer
		w, _ := pcapio.NewWriter(&b, pcapio.WriterOptions{Interfaces: []pcapio.Interface{{LinkType: 1}}})
		w.Flush()
		return &b
	}
	for _, tc := range []struct {
		name string
		who  *agentClient
		id   int64
		body io.Reader
		code int
		want string
	}{
		{"no such job", a, job.ID + 1, stream(), http.StatusNotFound, "no job"},
		{"another device's run", other, job.ID, stream(), http.StatusNotFound, "has no run on device"},
		{"queued run", a, job.ID, stream(), http.StatusConflict, "claim it before"},
	} {
		t.Run("push "+tc.name, func(t *testing.T) {
			r := mustPushed(t, tc.name, tc.who.startPush(tc.id, tc.body), tc.code)
			mustStatus(t, tc.name, r.code, []byte(r.body), tc.code, tc.want)
		})
	}
	mustClaim(t, a, job.ID, newClaim(t))
	r := mustPushed(t, "not pcapng", a.startPush(job.ID, strings.NewReader("hello, console")), http.StatusBadRequest)
	mustStatus(t, "not pcapng", r.code, []byte(r.body), http.StatusBadRequest, "section header")

	// A push without a client pushes into nothing, and ends when its
	// body does.
	mustPushed(t, "push without clients", a.startPush(job.ID, stream()), http.StatusNoContent)
	if c.srv.live.wanted(job.ID, dev) {
		t.Error("live stream wanted with no client")
	}
}
