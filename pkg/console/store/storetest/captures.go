package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// fullCapture sets every field of a capture.
var fullCapture = store.Capture{
	Name: "dns", Interface: "eth1", Filter: "udp port 53", SnapLen: 512, Hook: "tc", Direction: "both", MonitorPort: false,
	Output: store.Output{
		Dir: "/var/lib/ringtap/dns", Template: "{capture}-{time}", Format: "pcap",
		Rotate:   &store.Rotate{SizeMB: "512", Seconds: "1h", Keep: 24},
		Compress: "zstd", CompressLevel: 3, FrameSize: "1MiB",
		Retention:  &store.Retention{MaxBytes: "10GB", MaxAge: "7d", MinFree: "10%"},
		Postrotate: "/usr/local/bin/after", PostrotateTimeout: "30s",
		Export: &store.OutputExport{URL: "s3://bucket/dns/", DeleteAfterUpload: true},
	},
}

var monitorCapture = store.Capture{
	Name: "span", Interface: "eth2", Hook: "xdp", Direction: "in", MonitorPort: true,
	Output: store.Output{Dir: "/var/lib/ringtap/span"},
}

func testCaptures(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetCaptures(ctx, "nosuchdevice")
	mustErrorIs(t, err, store.ErrNotFound, "get captures of an unknown device")
	_, err = s.PutCaptures(ctx, "nosuchdevice", 0, nil, t0)
	mustErrorIs(t, err, store.ErrNotFound, "put captures of an unknown device")

	e := mustEnroll(t, s, "sensor", "m1", t0)
	id := e.Device.ID
	steps := []struct {
		name     string
		ifMatch  int64
		captures []store.Capture
		wantErr  error
		wantGen  int64
	}{
		{"first", 0, []store.Capture{fullCapture}, nil, 1},
		{"stale: generation 0 again", 0, []store.Capture{monitorCapture}, store.ErrStaleGeneration, 1},
		{"ahead: a generation not reached", 5, []store.Capture{monitorCapture}, store.ErrStaleGeneration, 1},
		{"second", 1, []store.Capture{fullCapture, monitorCapture}, nil, 2},
		{"unconditional", store.AnyGeneration, []store.Capture{monitorCapture}, nil, 3},
		{"emptied", 3, nil, nil, 4},
		{"same again is a change too", 4, nil, nil, 5},
	}
	want := store.DesiredConfig{Captures: []store.Capture{}}
	for i, st := range steps {
		at := t0.Add(time.Duration(i+1) * time.Minute)
		got, err := s.PutCaptures(ctx, id, st.ifMatch, st.captures, at)
		if st.wantErr != nil {
			mustErrorIs(t, err, st.wantErr, st.name)
		} else {
			mustNoError(t, err, st.name)
			want = store.DesiredConfig{Generation: st.wantGen, Captures: st.captures, UpdatedAt: at}
			if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
				t.Errorf("%s: put returned (-want +got):\n%s", st.name, diff)
			}
		}
		got, err = s.GetCaptures(ctx, id)
		mustNoError(t, err, "get captures")
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("%s: stored (-want +got):\n%s", st.name, diff)
		}
	}
}

// testCapturesRace: of puts racing with one generation, one succeeds.
func testCapturesRace(t *testing.T, s store.Store) {
	mustCapturesRace(t, []store.Store{s})
}

func mustCapturesRace(t *testing.T, stores []store.Store) {
	t.Helper()
	ctx := context.Background()
	e := mustEnroll(t, stores[0], "sensor", "m1", t0)
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			_, errs[i] = s.PutCaptures(ctx, e.Device.ID, 0, []store.Capture{monitorCapture}, t0)
		})
	}
	close(start)
	wg.Wait()
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrStaleGeneration):
			t.Errorf("put %d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d puts at generation 0 succeeded, want 1", ok)
	}
	dc, err := stores[0].GetCaptures(ctx, e.Device.ID)
	mustNoError(t, err, "get captures")
	if dc.Generation != 1 {
		t.Errorf("generation %d after the race, want 1", dc.Generation)
	}
}
