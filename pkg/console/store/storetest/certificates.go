package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func testCertificates(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetCertificate(ctx, "nosuchserial")
	mustErrorIs(t, err, store.ErrNotFound, "get an unknown certificate")

	e := mustEnroll(t, s, "sensor", "m1", t0)
	first := e.Certificate
	renewAt := t0.Add(20 * 24 * time.Hour)
	renewed := store.Certificate{
		Serial: unique("serial"), DeviceID: e.Device.ID, PublicKeyFingerprint: first.PublicKeyFingerprint,
		NotBefore: renewAt, NotAfter: renewAt.Add(30 * 24 * time.Hour), DER: []byte("renewed"),
	}

	tests := []struct {
		name    string
		cert    func() store.Certificate
		wantErr error
	}{
		{"another public key", func() store.Certificate {
			c := renewed
			c.PublicKeyFingerprint = fingerprint("someone else's key")
			return c
		}, store.ErrKeyMismatch},
		{"unknown device", func() store.Certificate {
			c := renewed
			c.DeviceID = "nosuchdevice"
			return c
		}, store.ErrNotFound},
		{"serial taken", func() store.Certificate {
			c := renewed
			c.Serial = first.Serial
			return c
		}, store.ErrExists},
		{"no DER", func() store.Certificate {
			c := renewed
			c.DER = nil
			return c
		}, store.ErrInvalid},
		{"no validity", func() store.Certificate {
			c := renewed
			c.NotAfter = time.Time{}
			return c
		}, store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustErrorIs(t, s.RenewCertificate(ctx, tt.cert()), tt.wantErr, "renew")
			d, err := s.GetDevice(ctx, e.Device.ID, t0)
			mustNoError(t, err, "get device")
			if d.CertSerial != first.Serial {
				t.Errorf("a refused renewal changed the current certificate to %s", d.CertSerial)
			}
		})
	}

	mustNoError(t, s.RenewCertificate(ctx, renewed), "renew")
	d, err := s.GetDevice(ctx, e.Device.ID, renewAt)
	mustNoError(t, err, "get device")
	if d.CertSerial != renewed.Serial || !d.CertNotAfter.Equal(renewed.NotAfter) {
		t.Errorf("device's certificate %s until %v, want %s until %v", d.CertSerial, d.CertNotAfter, renewed.Serial, renewed.NotAfter)
	}
	for _, want := range []store.Certificate{first, renewed} {
		got, err := s.GetCertificate(ctx, want.Serial)
		mustNoError(t, err, "get certificate")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("certificate %s (-want +got):\n%s", want.Serial, diff)
		}
	}
	// Renewing again checks against the current (renewed) certificate.
	again := renewed
	again.Serial = unique("serial")
	mustNoError(t, s.RenewCertificate(ctx, again), "renew again")
}
