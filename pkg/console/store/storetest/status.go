package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func testStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	doc := func(gen int) json.RawMessage {
		b, _ := json.Marshal(map[string]any{
			"generation": gen,
			"captures":   []map[string]any{{"name": "web", "state": "running", "seen": 1000, "captured": 990, "dropped": 0}},
			"interfaces": []string{"eth0", "eth1"},
			"errors":     []string{},
		})
		return b
	}
	hb := store.Status{
		Time: t0.Add(time.Minute), AppliedGeneration: 3, Hostname: "sensor-renamed", AgentVersion: "v1.1.0",
		Interfaces: []string{"eth0", "eth1"}, Document: doc(3),
	}
	mustErrorIs(t, s.PutStatus(ctx, "nosuchdevice", hb), store.ErrNotFound, "heartbeat of an unknown device")
	_, err := s.GetStatus(ctx, "nosuchdevice")
	mustErrorIs(t, err, store.ErrNotFound, "status of an unknown device")

	e := mustEnroll(t, s, "sensor", "m1", t0)
	id := e.Device.ID
	_, err = s.GetStatus(ctx, id)
	mustErrorIs(t, err, store.ErrNotFound, "status before a heartbeat")
	bad := hb
	bad.Document = json.RawMessage(`{"captures": [`)
	mustErrorIs(t, s.PutStatus(ctx, id, bad), store.ErrInvalid, "heartbeat that is not JSON")
	bad = hb
	bad.Time = time.Time{}
	mustErrorIs(t, s.PutStatus(ctx, id, bad), store.ErrInvalid, "heartbeat without time")

	mustNoError(t, s.PutStatus(ctx, id, hb), "heartbeat")
	mustStatus(t, s, id, hb)
	d, err := s.GetDevice(ctx, id, hb.Time)
	mustNoError(t, err, "get device")
	if !d.LastHeartbeat.Equal(hb.Time) || d.Hostname != hb.Hostname || d.AgentVersion != hb.AgentVersion || !cmp.Equal(d.Interfaces, hb.Interfaces) || d.State != store.StateOnline {
		t.Errorf("device after a heartbeat: %+v, want it updated from %+v", d, hb)
	}

	// An older heartbeat (delayed, through another console) changes nothing.
	old := hb
	old.Time, old.AppliedGeneration, old.Document, old.Hostname = t0.Add(30*time.Second), 2, doc(2), "old-name"
	mustNoError(t, s.PutStatus(ctx, id, old), "older heartbeat")
	mustStatus(t, s, id, hb)

	// A heartbeat without hostname, version or interfaces keeps them.
	next := store.Status{Time: t0.Add(2 * time.Minute), AppliedGeneration: 4, Document: doc(4)}
	mustNoError(t, s.PutStatus(ctx, id, next), "terse heartbeat")
	want := next
	want.Hostname, want.AgentVersion, want.Interfaces = hb.Hostname, hb.AgentVersion, hb.Interfaces
	mustStatus(t, s, id, want)
}

// mustStatus checks the stored status of device; documents compare as
// JSON values.
func mustStatus(t *testing.T, s store.Store, device string, want store.Status) {
	t.Helper()
	got, err := s.GetStatus(context.Background(), device)
	mustNoError(t, err, "get status")
	var wantDoc, gotDoc any
	mustNoError(t, json.Unmarshal(want.Document, &wantDoc), "decode the sent document")
	mustNoError(t, json.Unmarshal(got.Document, &gotDoc), "decode the stored document")
	if diff := cmp.Diff(wantDoc, gotDoc); diff != "" {
		t.Errorf("status document (-want +got):\n%s", diff)
	}
	want.Document, got.Document = nil, nil
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

// testTimePrecision: both stores keep microseconds, truncated.
func testTimePrecision(t *testing.T, s store.Store) {
	e := mustEnroll(t, s, "sensor", "m1", t0)
	at := t0.Add(1234567891 * time.Nanosecond)
	mustNoError(t, s.PutStatus(context.Background(), e.Device.ID, store.Status{Time: at, Document: json.RawMessage(`{}`)}), "heartbeat")
	got, err := s.GetStatus(context.Background(), e.Device.ID)
	mustNoError(t, err, "get status")
	if want := t0.Add(1234567 * time.Microsecond); !got.Time.Equal(want) || got.Time.Location() != time.UTC {
		t.Errorf("heartbeat at %v stored as %v, want %v (UTC, microseconds)", at, got.Time, want)
	}
}

// testListStatuses: the device list's two queries agree with the
// per-device reads: every device's generation, and the status of every
// device that sent a heartbeat (none for one that did not).
func testListStatuses(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustEnroll(t, s, "sensor-a", "ma", t0).Device.ID
	b := mustEnroll(t, s, "sensor-b", "mb", t0).Device.ID
	quiet := mustEnroll(t, s, "sensor-quiet", "mq", t0).Device.ID
	_, err := s.PutCaptures(ctx, a, 0, []store.Capture{{Name: "web", Interface: "eth0", Output: store.Output{Dir: "/var/lib/ringtap/web"}}}, t0)
	mustNoError(t, err, "put captures")
	_, err = s.PutCaptures(ctx, a, 1, []store.Capture{}, t0)
	mustNoError(t, err, "put captures again")
	for i, id := range []string{a, b} {
		mustNoError(t, s.PutStatus(ctx, id, store.Status{
			Time: t0.Add(time.Duration(i+1) * time.Second), AppliedGeneration: int64(2 - 2*i), Hostname: "h" + id[:4],
			AgentVersion: "v9", Interfaces: []string{"eth" + string(rune('0'+i))},
			Document: json.RawMessage(`{"captures":[],"errors":["e` + string(rune('0'+i)) + `"]}`),
		}), "heartbeat")
	}
	gens, err := s.ListGenerations(ctx)
	mustNoError(t, err, "list generations")
	sts, err := s.ListStatuses(ctx)
	mustNoError(t, err, "list statuses")
	for _, id := range []string{a, b, quiet} {
		c, err := s.GetCaptures(ctx, id)
		mustNoError(t, err, "get captures")
		if g, ok := gens[id]; !ok || g != c.Generation {
			t.Errorf("ListGenerations[%s] = %d, %v; GetCaptures says %d", id, g, ok, c.Generation)
		}
		one, err := s.GetStatus(ctx, id)
		got, ok := sts[id]
		if id == quiet {
			mustErrorIs(t, err, store.ErrNotFound, "status of the quiet device")
			if ok {
				t.Errorf("ListStatuses has %+v for a device without a heartbeat", got)
			}
			continue
		}
		mustNoError(t, err, "get status")
		if !ok {
			t.Errorf("ListStatuses lacks device %s", id)
			continue
		}
		mustStatus(t, s, id, got)
		if !got.Time.Equal(one.Time) || got.AppliedGeneration != one.AppliedGeneration {
			t.Errorf("ListStatuses[%s] = %+v, GetStatus %+v", id, got, one)
		}
	}
	if gens[a] != 2 || len(sts) != 2 {
		t.Errorf("generation of a %d (want 2), %d statuses (want 2)", gens[a], len(sts))
	}
}
