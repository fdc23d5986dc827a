package export

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/storage"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url          string
		bucket, pref string
		bad          bool
	}{
		{url: "s3://captures", bucket: "captures"},
		{url: "s3://captures/", bucket: "captures"},
		{url: "s3://captures/prefix/", bucket: "captures", pref: "prefix/"},
		{url: "s3://captures/prefix", bucket: "captures", pref: "prefix/"},
		{url: "s3://captures/a/b/", bucket: "captures", pref: "a/b/"},
		{url: "s3://captures//a/", bucket: "captures", pref: "a/"},
		{url: "s3://captures/a//b/", bad: true},
		{url: "S3://captures/", bucket: "captures"},
		{url: "file:///x", bad: true},
		{url: "s3://", bad: true},
		{url: "s3://ab/", bad: true},
		{url: "s3://user@captures/", bad: true},
		{url: "s3://captures:9000/", bad: true},
		{url: "s3://captures/?region=x", bad: true},
		{url: "captures/prefix", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := ParseURL(tt.url)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseURL = %+v, want an error", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Config{Bucket: tt.bucket, Prefix: tt.pref}, c, cmp.AllowUnexported(Config{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveEnvironment(t *testing.T) {
	tests := []struct {
		name         string
		endpoint     string
		env          map[string]string
		wantEndpoint string
		wantRegion   string
	}{
		{name: "AWS default", wantEndpoint: "https://s3.amazonaws.com"},
		{name: "explicit wins", endpoint: "http://127.0.0.1:9000/", env: map[string]string{"AWS_ENDPOINT_URL": "https://other"},
			wantEndpoint: "http://127.0.0.1:9000"},
		{name: "AWS_ENDPOINT_URL", env: map[string]string{"AWS_ENDPOINT_URL": "https://minio.example:9000", "AWS_DEFAULT_REGION": "eu-west-1"},
			wantEndpoint: "https://minio.example:9000", wantRegion: "eu-west-1"},
		{name: "AWS_ENDPOINT_URL_S3 first", env: map[string]string{"AWS_ENDPOINT_URL": "https://a", "AWS_ENDPOINT_URL_S3": "https://b",
			"AWS_REGION": "r1", "AWS_DEFAULT_REGION": "r2"}, wantEndpoint: "https://b", wantRegion: "r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"} {
				t.Setenv(k, tt.env[k])
			}
			r, err := Config{Bucket: "captures", Endpoint: tt.endpoint}.resolve()
			if err != nil {
				t.Fatal(err)
			}
			got := []string{r.Endpoint, r.Region, string(r.Addressing), string(r.checksum), r.Spool}
			want := []string{tt.wantEndpoint, tt.wantRegion, "auto", "md5", DefaultSpool}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if r.PartSize != DefaultPartSize || r.Concurrency != 1 || r.RetryMax != 5*time.Minute {
				t.Errorf("defaults: part size %d, concurrency %d, retry max %v", r.PartSize, r.Concurrency, r.RetryMax)
			}
		})
	}
}

func TestKeyTemplate(t *testing.T) {
	f := storage.FinishedFile{
		Path:       "/var/lib/ringtap/web-20261201T102800Z-000003.pcapng.zst",
		First:      time.Date(2026, 12, 2, 0, 0, 1, 0, time.FixedZone("x", 3600)), // 2026-12-01 23:00:01 UTC
		Start:      time.Date(2026, 12, 1, 22, 59, 0, 0, time.UTC),
		Seq:        3,
		Interfaces: []string{"eth0", "eth1"},
		Capture:    "web",
	}
	noPackets := f
	noPackets.First = time.Time{}
	cli := f
	cli.Capture = ""
	tests := []struct {
		name, tmpl, prefix string
		f                  storage.FinishedFile
		want               string
	}{
		{name: "default", tmpl: DefaultKeyTemplate, prefix: "p/", f: f,
			want: "p/sensor1/web/2026/12/01/web-20261201T102800Z-000003.pcapng.zst"},
		{name: "default, CLI (no capture), no prefix", tmpl: DefaultKeyTemplate, f: cli,
			want: "sensor1/2026/12/01/web-20261201T102800Z-000003.pcapng.zst"},
		{name: "date of start without packets", tmpl: "{date}/{seq}", f: noPackets, want: "2026/12/01/3"},
		{name: "start default layout", tmpl: "{start}-{seq}", f: f, want: "20261201T225900Z-3"},
		{name: "start layout with slashes", tmpl: "{start:2006/01/02/15}/{name}", f: f,
			want: "2026/12/01/22/web-20261201T102800Z-000003.pcapng.zst"},
		{name: "iface joined", tmpl: "{iface}/{seq}", f: f, want: "eth0+eth1/3"},
		{name: "slash in a value stays in its segment", tmpl: "{capture}/{seq}", f: storage.FinishedFile{Capture: "a/b", Seq: 1}, want: "a_b/1"},
		{name: "literal and empty segments", tmpl: "/x//{capture}/{seq}/", f: cli, want: "x/3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Key(tt.prefix, "sensor1", tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("key = %q, want %q", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"{name", "name}", "{}", "{seq:06}", "{start:}", "{host}/{date}", "{Name}"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := ParseKeyTemplate(bad); err == nil {
				t.Error("parsed")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n       int
		lo, hi  time.Duration
		rand    float64
		comment string
	}{
		{n: 1, rand: 0, lo: 500 * time.Millisecond},
		{n: 1, rand: 0.999999, hi: time.Second},
		{n: 3, rand: 0, lo: 2 * time.Second},
		{n: 10, rand: 0, lo: 150 * time.Second},
		{n: 10, rand: 0.999999, hi: 5 * time.Minute},
		{n: 1000, rand: 0.999999, hi: 5 * time.Minute},
	}
	for _, tt := range tests {
		b := backoff{min: time.Second, max: 5 * time.Minute, rand: func() float64 { return tt.rand }}
		d := b.delay(tt.n)
		if tt.lo != 0 && d != tt.lo || tt.hi != 0 && (d > tt.hi || d < tt.hi-time.Millisecond) {
			t.Errorf("delay(%d) with rand %v = %v", tt.n, tt.rand, d)
		}
	}
}

func TestPartSizeFor(t *testing.T) {
	tests := []struct{ configured, size, want int64 }{
		{16 << 20, 0, 16 << 20},
		{16 << 20, 16 << 20 * maxParts, 16 << 20},
		{16 << 20, 16<<20*maxParts + 1, 17 << 20},
		{5 << 20, 1 << 40, 105 << 20},
	}
	for _, tt := range tests {
		if got := partSizeFor(tt.configured, tt.size); got != tt.want {
			t.Errorf("partSizeFor(%d, %d) = %d, want %d", tt.configured, tt.size, got, tt.want)
		}
		if n := (tt.size + tt.want - 1) / tt.want; n > maxParts {
			t.Errorf("partSizeFor(%d, %d): %d parts", tt.configured, tt.size, n)
		}
	}
}
