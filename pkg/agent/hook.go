package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// hookOutputMax bounds the hook output kept for the log.
const hookOutputMax = 64 << 10

// runHook runs the shutdown hook argv with RINGTAP_SHUTDOWN_CLEAN set,
// killed (with its process group, where there is one) after timeout or
// when ctx is done, and logs its output line by line.
func runHook(ctx context.Context, log *slog.Logger, argv []string, timeout time.Duration, clean bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v := "0"
	if clean {
		v = "1"
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "RINGTAP_SHUTDOWN_CLEAN="+v)
	out := &limitedBuffer{max: hookOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild that keeps the output open must not hold Wait past the
	// kill.
	cmd.WaitDelay = time.Second
	killGroup(cmd)

	log.Info("running shutdown hook", "hook", argv, "clean", clean, "timeout", timeout)
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	sc := bufio.NewScanner(bytes.NewReader(out.buf.Bytes()))
	sc.Buffer(nil, hookOutputMax)
	for sc.Scan() {
		log.Info("shutdown hook output", "hook", argv[0], "line", sc.Text())
	}
	if out.truncated {
		log.Warn("shutdown hook output truncated", "hook", argv[0], "kept_bytes", hookOutputMax)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("shutdown hook %s: killed after the %s timeout: %w", argv[0], timeout, ctx.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("shutdown hook %s: killed after %s: %w", argv[0], took, ctx.Err())
	case err != nil:
		return fmt.Errorf("shutdown hook %s: %w", argv[0], err)
	}
	log.Info("shutdown hook done", "hook", argv[0], "took", took)
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		b.truncated = true
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}
