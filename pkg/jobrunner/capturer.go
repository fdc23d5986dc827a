package jobrunner

import (
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

// Capturer starts the captures of runs: the pcap manager (use Manager).
type Capturer interface {
	StartJob(spec pcapmgr.JobSpec) (Job, error)
}

// Job is one run's capture, as pcapmgr.Job.
type Job interface {
	Progress() pcapmgr.JobProgress
	LimitReached() <-chan struct{}
	Done() <-chan struct{}
	Err() error
	SetTee(t pcapmgr.Tee)
	Stop() (pcapmgr.JobProgress, error)
	Interfaces() []pcapio.Interface
}

// Manager is the Capturer of a pcap manager.
func Manager(m *pcapmgr.Manager) Capturer { return manager{m} }

type manager struct{ m *pcapmgr.Manager }

func (m manager) StartJob(spec pcapmgr.JobSpec) (Job, error) {
	j, err := m.m.StartJob(spec)
	if err != nil {
		return nil, err
	}
	return j, nil
}
