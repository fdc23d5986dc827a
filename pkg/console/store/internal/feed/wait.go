package feed

import (
	"context"
	"fmt"
	"math"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// NoJobs, as Wait's afterJobs, waits on the generation alone.
const NoJobs int64 = math.MaxInt64

// Read returns a device's desired config and whether the device is
// revoked.
type Read func(ctx context.Context) (store.DesiredConfig, bool, error)

// Wait is WaitForChanges over h: it returns read's config once its
// generation is above afterGen or its JobsSeq above afterJobs (NoJobs:
// the generation alone, as WaitForChange), ErrRevoked once the device is
// revoked, and ctx's error when ctx ends first.
func Wait(ctx context.Context, h *Hub, device string, afterGen, afterJobs int64, read Read) (store.DesiredConfig, error) {
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
		case dc.Generation > afterGen, dc.JobsSeq > afterJobs:
			return dc, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return store.DesiredConfig{}, ctx.Err()
		}
	}
}
