package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// sidecarVersion is the version of the sidecar format.
const sidecarVersion = 1

// sidecar is the JSON next to each finished file (NAME.json): its time
// span and counts, so that a query can pick files without opening them.
type sidecar struct {
	Version     int       `json:"version"`
	File        string    `json:"file"` // the data file's base name
	Format      string    `json:"format"`
	Compression string    `json:"compression,omitempty"`
	Size        int64     `json:"size"`
	Packets     uint64    `json:"packets"`
	First       time.Time `json:"first,omitzero"`
	Last        time.Time `json:"last,omitzero"`
	Start       time.Time `json:"start,omitzero"`
	End         time.Time `json:"end,omitzero"`
	Seq         uint64    `json:"seq"`
	Interfaces  []string  `json:"interfaces"`
	Capture     string    `json:"capture,omitempty"`
	Recovered   bool      `json:"recovered,omitempty"`
}

func sidecarOf(f FinishedFile) sidecar {
	return sidecar{
		Version: sidecarVersion, File: filepath.Base(f.Path), Format: f.Format, Compression: f.Compression,
		Size: f.Size, Packets: f.Packets, First: f.First.UTC(), Last: f.Last.UTC(), Start: f.Start.UTC(), End: f.End.UTC(),
		Seq: f.Seq, Interfaces: f.Interfaces, Capture: f.Capture, Recovered: f.Recovered,
	}
}

// writeSidecar writes the sidecar of f atomically (a hidden temporary
// file, synced, renamed); the caller syncs the directory.
func writeSidecar(f FinishedFile) (string, error) {
	b, err := json.MarshalIndent(sidecarOf(f), "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	final := sidecarName(f.Path)
	tmp := filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+tempSuffix)
	if err := writeSynced(tmp, b); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write sidecar: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("rename sidecar: %w", err)
	}
	return final, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// ReadSidecar reads what the sidecar of the capture file at path records
// about it, without opening the capture file. Path is the capture file's
// path, not the sidecar's.
func ReadSidecar(path string) (FinishedFile, error) {
	b, err := os.ReadFile(sidecarName(path))
	if err != nil {
		return FinishedFile{}, fmt.Errorf("read sidecar: %w", err)
	}
	var s sidecar
	if err := json.Unmarshal(b, &s); err != nil {
		return FinishedFile{}, fmt.Errorf("parse sidecar %s: %w", sidecarName(path), err)
	}
	if s.Version != sidecarVersion {
		return FinishedFile{}, fmt.Errorf("sidecar %s has version %d, want %d", sidecarName(path), s.Version, sidecarVersion)
	}
	comp := s.Compression
	return FinishedFile{
		Path: path, Size: s.Size, Packets: s.Packets, First: s.First, Last: s.Last, Start: s.Start, End: s.End,
		Seq: s.Seq, Interfaces: s.Interfaces, Capture: s.Capture, Compression: comp, Format: s.Format,
		Sidecar: sidecarName(path), Recovered: s.Recovered,
	}, nil
}

// syncDir makes the entries of dir (renames, removals) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
