package feed

import (
	"context"
	"fmt"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// Read returns a device's desired config and whether the device is
// revoked.
type Read func(ctx context.Context) (store.DesiredConfig, bool, error)

// Wait is WaitForChange over h: it returns read's config once its
// generation is above after, ErrRevoked once the device is revoked, and
// ctx's error when ctx ends first.
func Wait(ctx context.Context, h *Hub, device string, after int64, read Read) (store.DesiredConfig, error) {
	for {
		ch := h.Watch(device)
		if h.Closed() {
			return store.DesiredConfig{}, fmt.Errorf("wait for device %s: %w", device, store.ErrClosed)
		}
		dc, revoked, err := read(ctx)
		switch {
		case err != nil:
			return store.DesiredConfig{}, err
		case revoked:
			return store.DesiredConfig{}, fmt.Errorf("wait for device %s: %w", device, store.ErrRevoked)
		case dc.Generation > after:
			return dc, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return store.DesiredConfig{}, ctx.Err()
		}
	}
}
