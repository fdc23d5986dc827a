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
