package linkwatch

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultResync is the period of the full dump when Options.Resync is 0.
const DefaultResync = 30 * time.Second

// ErrRunning is returned by Run when the Watcher is already running.
var ErrRunning = errors.New("link watcher is already running")

// Link is one network interface as the Watcher sees it.
type Link struct {
	Name  string
	Index int
	// Up is the administrative state (IFF_UP, as `ip link set up` sets
	// it), not the operational state (carrier).
	Up bool
	// EncapType is netlink's name of the link's hardware type: "ether",
	// "loopback", "none", ...
	EncapType string
	MTU       int
}

// Options configure a Watcher. The zero value watches the caller's
// namespace.
type Options struct {
	// NetNS is the path of the network namespace to watch, such as
	// /run/netns/x; "" is the namespace the Run goroutine is in.
	NetNS string
	// Resync is the period of the full dump; 0 or less means
	// DefaultResync.
	Resync time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ReceiveBufferSize is the netlink socket's SO_RCVBUF; 0 or less keeps
	// the kernel default. The kernel doubles the value and raises it to
	// its minimum (a few KiB), and caps it at net.core.rmem_max.
	ReceiveBufferSize int
}

// Watcher watches the links of one network namespace. Make it with New,
// run it with Run; the other methods are safe to call at any time from any
// goroutine.
type Watcher struct {
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex
	view   view
	synced bool

	subs    subscribers
	running atomic.Bool
	stats   counters

	// onApplied, when set before Run, is called with the link's alias
	// after each update is applied (tests use it as a sentinel).
	onApplied func(alias string)
}

// New returns a Watcher for opts. It does nothing until Run.
func New(opts Options) *Watcher {
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReceiveBufferSize < 0 {
		opts.ReceiveBufferSize = 0
	}
	return &Watcher{
		opts: opts,
		log:  opts.Logger.With("netns", where(opts.NetNS)),
		view: newView(),
	}
}

// where names the watched namespace in errors and logs.
func where(netns string) string {
	if netns == "" {
		return "the current network namespace"
	}
	return netns
}

// Links returns a copy of the view by name; it is empty until the first
// dump.
func (w *Watcher) Links() map[string]Link {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.view.byNameCopy()
}

// Lookup returns the link called name.
func (w *Watcher) Lookup(name string) (Link, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.view.lookup(name)
}

// Synced reports whether the first full dump has completed.
func (w *Watcher) Synced() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.synced
}

// set, remove and replace notify under mu, so whoever observes a change
// (through Links, Lookup or Synced) finds its notification already sent.

// set applies a new or changed link and notifies subscribers if the view
// changed.
func (w *Watcher) set(l Link) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := w.view.set(l)
	if changed {
		w.subs.notify()
	}
	return changed
}

// remove applies a deleted link and notifies subscribers if the view
// changed.
func (w *Watcher) remove(index int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := w.view.remove(index)
	if changed {
		w.subs.notify()
	}
	return changed
}

// replace swaps in the view from a full dump, marks the Watcher synced,
// and notifies subscribers if the view changed. It returns what changed.
func (w *Watcher) replace(links []Link) diff {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.view.replace(links)
	w.synced = true
	if !d.empty() {
		w.subs.notify()
	}
	return d
}
