package pcapmgr

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/pcapio"
)

// JobSpec is a one-off capture: a capture job's run on this agent. It
// shares each interface's program and rings with the standing captures,
// as any capture does, and writes one pcapng file.
type JobSpec struct {
	// Name is unique among the running jobs and the standing captures
	// ("job-42").
	Name       string
	Interfaces []string
	// Filter is compiled (filter.ForCapture); nil captures every frame.
	Filter  *capture.Filter
	SnapLen uint32
	// Path is the pcapng file to create; its directory must exist and
	// the file must not.
	Path string
	// MaxPackets and MaxBytes bound the file (0: no bound): it holds at
	// most MaxPackets packets and stays at most MaxBytes bytes, closing
	// statistics blocks included. LimitReached is closed when a packet
	// did not fit.
	MaxPackets, MaxBytes uint64
	// Application is the pcapng shb_userappl.
	Application string
}

// JobProgress is what a job has written.
type JobProgress struct {
	// Packets and Bytes (of packet data) written to the file.
	Packets, Bytes uint64
	// Drops are matched frames lost: ring drops and copy failures.
	Drops uint64
	// Size is the file's size so far (bytes written out, buffered ones
	// included).
	Size uint64
	// Seen are the frames the filter ran on; Matched those it took.
	Seen, Matched uint64
}

// Tee gets every packet written to a job's file, such as a live stream.
// WritePacket must never block and must not keep p or p.Data.
type Tee interface {
	WritePacket(p *pcapio.Packet) error
}

// Job is a running one-off capture.
type Job struct {
	m    *Manager
	spec JobSpec
	cap  *capture.Capture
	w    *jobWriter

	stopOnce sync.Once
	final    JobProgress
	stopErr  error
}

// isb is room left for the closing statistics blocks of one interface
// (an ISB with start and end times is 56 bytes).
const isb = 128

// StartJob starts a job on its interfaces now. The file is created
// first; if the capture cannot start, it is removed and nothing else has
// changed. The caller must Stop the job.
func (m *Manager) StartJob(spec JobSpec) (*Job, error) {
	if spec.Name == "" || len(spec.Interfaces) == 0 || spec.Path == "" {
		return nil, errors.New("start job: a job needs a name, an interface and a file")
	}
	ifaces := make([]pcapio.Interface, len(spec.Interfaces))
	snap := spec.SnapLen
	if snap == 0 {
		snap = capture.DefaultSnapLen
	}
	for i, name := range spec.Interfaces {
		link, ok := m.lookup(name)
		if !ok {
			return nil, fmt.Errorf("start job %s: interface %s is not present on this device", spec.Name, name)
		}
		lt, err := capture.LinkTypeFor(link.EncapType, name)
		if err != nil {
			return nil, fmt.Errorf("start job %s: %w", spec.Name, err)
		}
		ifaces[i] = pcapio.Interface{Name: name, LinkType: lt, SnapLen: snap}
	}
	if min := uint64(len(ifaces))*isb + 1024; spec.MaxBytes != 0 && spec.MaxBytes < min {
		return nil, fmt.Errorf("start job %s: max bytes %d cannot hold a pcapng header: give at least %d", spec.Name, spec.MaxBytes, min)
	}

	m.mu.Lock()
	if _, taken := m.desired[spec.Name]; taken {
		m.mu.Unlock()
		return nil, fmt.Errorf("start job %s: a standing capture has that name", spec.Name)
	}
	if _, taken := m.jobs[spec.Name]; taken {
		m.mu.Unlock()
		return nil, fmt.Errorf("start job %s: a job of that name is running", spec.Name)
	}
	j := &Job{m: m, spec: spec}
	m.jobs[spec.Name] = j // reserved; removed again on failure
	m.mu.Unlock()

	fail := func(err error) (*Job, error) {
		m.mu.Lock()
		delete(m.jobs, spec.Name)
		m.mu.Unlock()
		return nil, err
	}
	f, err := os.OpenFile(spec.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fail(fmt.Errorf("start job %s: %w", spec.Name, err))
	}
	w, err := newJobWriter(f, spec, ifaces)
	if err != nil {
		f.Close()
		os.Remove(spec.Path)
		return fail(fmt.Errorf("start job %s: %w", spec.Name, err))
	}
	c, err := m.opts.Engine.Start(capture.Spec{
		Name: spec.Name, Interfaces: spec.Interfaces, Hook: capture.HookAuto, Direction: capture.DirInOut,
		SnapLen: snap, Filter: spec.Filter,
	}, w)
	if err != nil {
		f.Close()
		os.Remove(spec.Path)
		return fail(fmt.Errorf("start job %s: %w", spec.Name, err))
	}
	j.cap, j.w = c, w
	m.log.Info("job capture running", "job", spec.Name, "interfaces", spec.Interfaces, "hook", c.HookName(), "file", spec.Path)
	return j, nil
}

// Interfaces are the interfaces as the file's interface description
// blocks give them, in order.
func (j *Job) Interfaces() []pcapio.Interface { return append([]pcapio.Interface(nil), j.w.ifaces...) }

// Progress is what the job has written so far (after Stop, in all).
func (j *Job) Progress() JobProgress {
	p := JobProgress{Packets: j.w.packets.Load(), Bytes: j.w.bytes.Load(), Size: j.w.size.Load()}
	if st, err := j.cap.Stats(); err == nil {
		for _, is := range st.Interfaces {
			t := is.Total()
			p.Drops += t.Lost()
			p.Seen += t.Seen
			p.Matched += t.Matched
		}
	}
	return p
}

// LimitReached is closed once a packet did not fit in MaxPackets or
// MaxBytes: the file is as full as the job allows.
func (j *Job) LimitReached() <-chan struct{} { return j.w.limit }

// Done is closed when the capture ended by itself: its interface went
// away, or the file could not be written (Err says why).
func (j *Job) Done() <-chan struct{} { return j.cap.Done() }

// Err is why the capture ended by itself; nil while it runs.
func (j *Job) Err() error { return j.cap.Err() }

// SetTee gives every packet written from now on to t as well; nil
// detaches the tee. It returns when no packet is being handed to the
// tee it replaced.
func (j *Job) SetTee(t Tee) {
	j.w.mu.Lock()
	j.w.tee = t
	j.w.mu.Unlock()
}

// Stop takes the job's filter out of its interfaces' programs (the other
// captures keep running), drains what it matched, writes the closing
// statistics blocks, syncs and closes the file. It returns what was
// written in all. Calling it again returns the first answer.
func (j *Job) Stop() (JobProgress, error) {
	j.stopOnce.Do(func() {
		err := j.cap.Stop()
		j.SetTee(nil)
		if cerr := j.w.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("finish %s: %w", j.spec.Path, cerr))
		}
		j.final = j.Progress()
		j.stopErr = err
		j.m.mu.Lock()
		delete(j.m.jobs, j.spec.Name)
		j.m.mu.Unlock()
		j.m.log.Info("job capture stopped", "job", j.spec.Name, "packets", j.final.Packets, "bytes", j.final.Bytes,
			"drops", j.final.Drops, "size", j.final.Size, "over_limit", j.w.over.Load(), "error", err)
	})
	return j.final, j.stopErr
}

// stopJobs stops the jobs still running when the manager stops, so that
// their files are finished before the engine goes.
func (m *Manager) stopJobs() error {
	m.mu.Lock()
	js := make([]*Job, 0, len(m.jobs))
	for _, j := range m.jobs {
		if j.cap != nil {
			js = append(js, j)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, j := range js {
		if _, err := j.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", j.spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// jobWriter writes a job's packets to its file, within its bounds, and
// hands them to the tee. The capture calls it under its own lock, one
// call at a time; mu orders the tee's replacement and close against it.
type jobWriter struct {
	mu     sync.Mutex
	f      *os.File
	w      *pcapio.Writer
	ifaces []pcapio.Interface
	tee    Tee
	closed bool

	maxPackets, maxBytes uint64
	reserve              uint64 // room kept for the statistics blocks

	packets, bytes, size, over atomic.Uint64
	limit                      chan struct{}
	limitOnce                  sync.Once
}

func newJobWriter(f *os.File, spec JobSpec, ifaces []pcapio.Interface) (*jobWriter, error) {
	w, err := pcapio.NewWriter(f, pcapio.WriterOptions{Format: pcapio.FormatPCAPNG, Application: spec.Application,
		Interfaces: ifaces, BufferSize: 256 << 10})
	if err != nil {
		return nil, err
	}
	jw := &jobWriter{f: f, w: w, ifaces: ifaces, maxPackets: spec.MaxPackets, maxBytes: spec.MaxBytes,
		reserve: uint64(len(ifaces)) * isb, limit: make(chan struct{})}
	jw.size.Store(uint64(w.Written()))
	return jw, nil
}

// epbMax is the most bytes an enhanced packet block of n bytes of data
// takes: header and trailer, padding, the flags option and its end.
func epbMax(n int) uint64 { return uint64(32 + (n+3)&^3 + 12) }

func (w *jobWriter) full() {
	w.limitOnce.Do(func() { close(w.limit) })
}

func (w *jobWriter) WritePacket(p *pcapio.Packet) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	n := w.packets.Load()
	if (w.maxPackets != 0 && n >= w.maxPackets) ||
		(w.maxBytes != 0 && uint64(w.w.Written())+epbMax(len(p.Data))+w.reserve > w.maxBytes) {
		w.over.Add(1)
		w.full()
		return nil
	}
	if err := w.w.WritePacket(p); err != nil {
		return err
	}
	w.packets.Store(n + 1)
	w.bytes.Add(uint64(len(p.Data)))
	w.size.Store(uint64(w.w.Written()))
	if w.maxPackets != 0 && n+1 >= w.maxPackets {
		w.full()
	}
	if w.tee != nil {
		_ = w.tee.WritePacket(p) // a live stream drops and counts on its own
	}
	return nil
}

func (w *jobWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	return w.w.Flush()
}

// WriteInterfaceStats writes the closing statistics block of an
// interface (the capture calls it once, when it stops).
func (w *jobWriter) WriteInterfaceStats(iface int, s pcapio.InterfaceStats) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.w.WriteInterfaceStats(iface, s)
	w.size.Store(uint64(w.w.Written()))
	return err
}

func (w *jobWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.w.Flush()
	w.size.Store(uint64(w.w.Written()))
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
