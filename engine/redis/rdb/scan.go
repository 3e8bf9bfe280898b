package rdb

import (
	"errors"
	"io"
)

// Summary is what a walk over a whole RDB file counted.
type Summary struct {
	Version   int
	Keys      map[int]int64 // keys per database
	Expires   map[int]int64 // of those, keys with an expiry
	Functions int           // function libraries
	MaxDB     int           // the highest database number selected
	// NoChecksum: the file was written without a checksum, so only its
	// framing could be checked.
	NoChecksum bool
	// Unreadable is set when the walk stopped at content it could not
	// read although the file's checksum is right: content this build does
	// not know (ErrUnsupported), or a server's bug. The counts stop there.
	Unreadable error
}

// Scan walks the RDB file in r to its end. It returns ErrCorrupt when the
// file is damaged: truncated, or different from what its checksum says.
// Content the walk cannot read is not an error by itself if the checksum
// holds: Summary.Unreadable says what stopped the walk, and the server that
// loads the file has the last word.
func Scan(r io.Reader) (*Summary, error) {
	rd, err := NewReader(r, false)
	if err != nil {
		return nil, err
	}
	s := &Summary{Version: rd.Version(), Keys: map[int]int64{}, Expires: map[int]int64{}}
	for {
		e, err := rd.Next()
		s.MaxDB, s.NoChecksum = rd.maxDB, rd.noSum
		if err == io.EOF {
			return s, nil
		}
		if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
			if derr := rd.drain(); derr != nil {
				return s, derr
			}
			s.Unreadable, s.NoChecksum = err, rd.noSum
			return s, nil
		}
		if err != nil {
			return s, err
		}
		switch e.Kind {
		case Key:
			s.Keys[e.DB]++
			if e.ExpireMs != 0 {
				s.Expires[e.DB]++
			}
		case Function:
			s.Functions++
		}
	}
}

// drain passes the rest of the file through the checksum, after a walk
// stopped early, and reports whether the whole file is intact.
func (r *Reader) drain() error {
	if !r.done {
		r.done = true
		if _, err := io.Copy(&r.v, r.r); err != nil {
			return err
		}
	}
	err := r.v.Check()
	if errors.Is(err, ErrNoChecksum) {
		r.noSum = true
		return nil
	}
	return err
}
