package signals

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestTwoStep(t *testing.T) {
	hard := make(chan os.Signal, 1)
	ctx, stop := TwoStep(context.Background(), func(s os.Signal) { hard <- s })
	defer stop()

	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("first signal did not cancel the context")
	}
	select {
	case s := <-hard:
		t.Fatalf("hard stop after one signal: %v", s)
	default:
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-hard:
		if s != syscall.SIGTERM {
			t.Fatalf("hard stop got %v, want SIGTERM", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not hard-stop")
	}
	stop()
	stop()
}

func TestTwoStepWith(t *testing.T) {
	hups := make(chan struct{}, 4)
	first := make(chan os.Signal, 1)
	hard := make(chan os.Signal, 1)
	ctx, stop := TwoStepWith(context.Background(), Handlers{
		Stop:   func(s os.Signal) { first <- s },
		Hard:   func(s os.Signal) { hard <- s },
		Hangup: func() { hups <- struct{}{} },
	})
	defer stop()

	mustKill := func(s syscall.Signal) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), s); err != nil {
			t.Fatal(err)
		}
	}
	mustKill(syscall.SIGHUP)
	select {
	case <-hups:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGHUP did not call Hangup")
	}
	if ctx.Err() != nil {
		t.Fatal("SIGHUP cancelled the context")
	}
	mustKill(syscall.SIGTERM)
	select {
	case s := <-first:
		if s != syscall.SIGTERM {
			t.Fatalf("Stop got %v, want SIGTERM", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first signal did not call Stop")
	}
	if ctx.Err() == nil {
		t.Fatal("first signal did not cancel the context")
	}
	// After the first stop, SIGHUP is still caught (the process lives)
	// but ignored.
	mustKill(syscall.SIGHUP)
	mustKill(syscall.SIGINT)
	select {
	case s := <-hard:
		if s != syscall.SIGINT {
			t.Fatalf("hard stop got %v, want SIGINT", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not hard-stop")
	}
	select {
	case <-hups:
		t.Fatal("SIGHUP after the first stop called Hangup")
	default:
	}
	stop()
	stop()
}
