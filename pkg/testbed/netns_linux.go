package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runDir is where `ip netns` keeps its bind mounts.
const runDir = "/run/netns"

// runDirMu keeps concurrent NewPair calls from both bind-mounting runDir.
var runDirMu sync.Mutex

// ensureRunDir makes /run/netns a shared mount point, as iproute2 does, so
// namespaces mounted there are seen by processes in other mount namespaces
// (`ip netns exec` makes one per command).
func ensureRunDir() error {
	runDirMu.Lock()
	defer runDirMu.Unlock()
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", runDir, err)
	}
	bound := false
	for {
		err := unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s a shared mount: %w", runDir, err)
		}
		// Not a mount point yet: bind it onto itself, then retry.
		if err := unix.Mount(runDir, runDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", runDir, err)
		}
		bound = true
	}
}

// createNamedNS makes a new network namespace bind-mounted at
// /run/netns/name and returns an open handle on it. The caller's thread is
// untouched: the namespace is made on a locked thread that is restored (or
// retired, if restoring fails).
func createNamedNS(name string) (netns.NsHandle, string, error) {
	if err := ensureRunDir(); err != nil {
		return netns.None(), "", err
	}
	path := filepath.Join(runDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return netns.None(), "", fmt.Errorf("create mount point %s: %w", path, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and Go retires it with this goroutine.
		if merr != nil {
			errc <- fmt.Errorf("bind mount network namespace at %s: %w", path, merr)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return netns.None(), "", err
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		deleteNamedNS(path)
		return netns.None(), "", fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return h, path, nil
}

// deleteNamedNS removes the bind mount at path. The namespace dies once no
// open handle, socket or thread refers to it any more.
func deleteNamedNS(path string) error {
	var errs []error
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
	}
	return errors.Join(errs...)
}
