package catalog

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// cacheFile is a Cache on disk: the valid summaries and the records, for a
// command that runs again later (list). Invalid verdicts are not kept: they
// are read again, with the reason.
type cacheFile struct {
	Format  int                        `json:"format"`
	Entries []cacheFileEntry           `json:"entries"`
	Docs    map[string]json.RawMessage `json:"docs"`
}

type cacheFileEntry struct {
	Target  string   `json:"target"`
	ID      string   `json:"id"`
	Key     string   `json:"key"`
	Size    int64    `json:"size"`
	ModTime string   `json:"mtime"` // RFC 3339 with nanoseconds
	ETag    string   `json:"etag,omitempty"`
	Summary *Summary `json:"summary"`
}

const cacheFileFormat = 1

// maxCacheFile bounds what LoadCacheFile reads.
const maxCacheFile = 256 << 20

// LoadCacheFile reads a cache written by Save. A missing, unreadable or
// malformed file is an empty cache: it only ever saves reads.
func LoadCacheFile(path string) *Cache {
	c := NewCache()
	f, err := os.Open(path)
	if err != nil {
		return c
	}
	defer f.Close()
	var cf cacheFile
	if json.NewDecoder(io.LimitReader(f, maxCacheFile)).Decode(&cf) != nil || cf.Format != cacheFileFormat {
		return c
	}
	for _, e := range cf.Entries {
		var b Backup
		if e.Summary == nil || b.Object.ModTime.UnmarshalText([]byte(e.ModTime)) != nil {
			continue
		}
		b.ID, b.Summary = e.ID, e.Summary
		b.Object.Key, b.Object.Size, b.Object.ETag = e.Key, e.Size, e.ETag
		c.put(e.Target, &b)
	}
	for k, v := range cf.Docs {
		c.docs[k] = v
	}
	return c
}

// Save writes c to path atomically, readable by its owner only.
func (c *Cache) Save(path string) error {
	c.mu.Lock()
	cf := cacheFile{Format: cacheFileFormat, Docs: map[string]json.RawMessage{}}
	for target, entries := range c.m {
		for id, e := range entries {
			if e.summary == nil {
				continue
			}
			mt, _ := e.obj.ModTime.MarshalText()
			cf.Entries = append(cf.Entries, cacheFileEntry{Target: target, ID: id, Key: e.obj.Key, Size: e.obj.Size,
				ModTime: string(mt), ETag: e.obj.ETag, Summary: e.summary})
		}
	}
	for k, v := range c.docs {
		if raw, ok := v.(json.RawMessage); ok {
			cf.Docs[k] = raw
		} else if raw, err := json.Marshal(v); err == nil {
			cf.Docs[k] = raw
		}
	}
	c.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".catalog-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := json.NewEncoder(f).Encode(&cf); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
