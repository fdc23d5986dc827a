package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctl writes value to /proc/sys/<key with dots as slashes> in the
// calling thread's network namespace (call it inside Host.Do).
func sysctl(key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
