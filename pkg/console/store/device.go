package store

import "time"

// State is a device's health as derived when it is read.
type State string

// The states of a device.
const (
	// StateOnline is a device whose last heartbeat is within StaleAfter.
	StateOnline State = "online"
	// StateStale is a device not heard from within StaleAfter, or never.
	StateStale State = "stale"
	// StateRevoked is a revoked device, whatever its heartbeats.
	StateRevoked State = "revoked"
)

// Device is an enrolled agent.
type Device struct {
	// ID is random (NewID), given by the console at enrollment.
	ID           string
	Hostname     string
	MachineID    string
	AgentVersion string
	// Interfaces are the interface names the agent reported last.
	Interfaces []string
	EnrolledAt time.Time
	// CertSerial and CertNotAfter are the current certificate's.
	CertSerial   string
	CertNotAfter time.Time
	// LastHeartbeat is zero until the first heartbeat.
	LastHeartbeat time.Time
	// RevokedAt is zero unless revoked.
	RevokedAt time.Time
	// State is derived at read time; it is not stored.
	State State
}

// StateAt derives d's state at now: revoked, else online when its last
// heartbeat is at most staleAfter old, else stale.
func (d Device) StateAt(now time.Time, staleAfter time.Duration) State {
	switch {
	case !d.RevokedAt.IsZero():
		return StateRevoked
	case !d.LastHeartbeat.IsZero() && now.Sub(d.LastHeartbeat) <= staleAfter:
		return StateOnline
	default:
		return StateStale
	}
}

// Duplicate is a machine id shared by several devices that are not
// revoked (cloned VMs, most often).
type Duplicate struct {
	MachineID string
	// DeviceIDs are the devices, oldest enrollment first.
	DeviceIDs []string
}
