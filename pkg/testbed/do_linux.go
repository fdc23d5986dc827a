package testbed

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread switched into h's network namespace and
// returns its error. Sockets fn opens stay in that namespace after Do
// returns. fn runs on another goroutine: it must not call t.FailNow and
// friends. A panic in fn is re-raised in the caller after the thread has
// been switched back. If the thread cannot be switched back it stays
// locked, so Go retires it instead of reusing it.
func (h Host) Do(fn func() error) error {
	target, err := netns.GetFromPath(h.NSPath)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", h.NSPath, err)
	}
	defer target.Close()

	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get current network namespace: %w", err)}
			return
		}
		if err := netns.Set(target); err != nil {
			orig.Close()
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter network namespace %s: %w", h.NSPath, err)}
			return
		}
		var res result
		func() {
			defer func() {
				if p := recover(); p != nil {
					res.panic = p
				}
			}()
			res.err = fn()
		}()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		// Closed before the caller is answered, so that no fd of ours
		// outlives the call.
		orig.Close()
		done <- res
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}
