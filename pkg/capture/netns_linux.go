package capture

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/caps"
)

// inNetNS runs fn on a locked OS thread inside the namespace at path (the
// caller's own namespace when path is empty). If the thread cannot be
// switched back it stays locked, so Go retires it with the goroutine.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				return fmt.Errorf("get current network namespace: %w", err)
			}
			// Closed before the caller is answered, so that no fd of
			// ours outlives the call.
			defer orig.Close()
			if err := netns.Set(target); err != nil {
				runtime.UnlockOSThread()
				if errors.Is(err, unix.EPERM) {
					return fmt.Errorf("%w: %s", ErrPermission, caps.Needs("entering network namespace "+path, []int{caps.SysAdmin}))
				}
				return fmt.Errorf("enter network namespace %s: %w", path, err)
			}
			ferr := fn()
			if err := netns.Set(orig); err == nil {
				runtime.UnlockOSThread()
			}
			return ferr
		}()
	}()
	return <-errc
}
