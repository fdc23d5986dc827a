package testbed

// PairConfig says how to build a Pair. The zero value is valid.
type PairConfig struct {
	// MTU of both veth ends; 0 means 1500.
	MTU int
	// IPv6 assigns 2001:db8:X::1/64 and ::2 (no DAD). When false, IPv6 is
	// disabled in both namespaces by sysctl, so no ND or MLD frames appear.
	IPv6 bool
	// Name prefixes namespace and interface names; "" means "rt". It is cut
	// to 6 bytes so interface names fit in 15.
	Name string
}

const (
	defaultMTU    = 1500
	defaultPrefix = "rt"
	maxPrefix     = 6 // prefix + "-" + 6 hex + "-a" ≤ 15 (IFNAMSIZ-1)
)

func (c PairConfig) withDefaults() PairConfig {
	if c.MTU == 0 {
		c.MTU = defaultMTU
	}
	if c.Name == "" {
		c.Name = defaultPrefix
	}
	if len(c.Name) > maxPrefix {
		c.Name = c.Name[:maxPrefix]
	}
	return c
}
