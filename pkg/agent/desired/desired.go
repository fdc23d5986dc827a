package desired

import (
	"fmt"

	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

// Captures returns the desired set of cfg's captures. application names
// the writer in the files' section headers ("ringtap 1.2.3").
func Captures(cfg *config.Config, application string) ([]pcapmgr.Desired, error) {
	out := []pcapmgr.Desired{}
	for _, c := range cfg.Captures {
		var f *capture.Filter
		if c.Filter != "" {
			var err error
			if f, err = filter.ForCapture(c.Filter); err != nil {
				return nil, fmt.Errorf("capture %s: filter: %w", c.Name, err)
			}
		}
		sopts, err := c.StorageOptions()
		if err != nil {
			return nil, fmt.Errorf("capture %s: %w", c.Name, err)
		}
		sopts.Application = application
		d := pcapmgr.Desired{
			Name: c.Name, Interface: c.Interface, Storage: sopts,
			Spec: capture.Spec{Hook: c.Hook, Direction: c.Direction, SnapLen: c.SnapLen, Filter: f, MonitorPort: c.MonitorPort},
		}
		key := c
		key.Line = 0
		d.Key = fmt.Sprintf("%+v", key)
		if c.Output.Export.URL != "" {
			xc, err := cfg.Export.ExportConfig(c.Output.Export.URL, c.Output.Export.DeleteAfterUpload, c.Name)
			if err != nil {
				return nil, fmt.Errorf("capture %s: %w", c.Name, err)
			}
			d.Export, d.UploadGrace = &xc, cfg.Export.UploadGrace
			d.Key += fmt.Sprintf("|%+v", *cfg.Export)
		}
		out = append(out, d)
	}
	return out, nil
}
