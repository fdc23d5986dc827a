//go:build !linux

package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// Run returns an error wrapping errors.ErrUnsupported: link events need
// Linux's rtnetlink.
func (w *Watcher) Run(ctx context.Context) error {
	return fmt.Errorf("watch links on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
