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
	// Unsupported is set when the walk met content it cannot read (the
	// counts stop there); the checksum was still checked to the end.
	Unsupported error
}

// Scan walks the RDB file in r to its end. It returns ErrCorrupt when the
// file is damaged. Content the walk does not understand is not an error by
// itself: the rest of the file is still checked against its checksum, and
// Summary.Unsupported says what stopped the walk.
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
		if errors.Is(err, ErrUnsupported) {
			s.Unsupported = err
			err = rd.drain()
			s.NoChecksum = rd.noSum
			return s, err
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

// drain passes the rest of the file through the checksum.
func (r *Reader) drain() error {
	r.done = true
	if _, err := io.Copy(&r.v, r.r); err != nil {
		return err
	}
	err := r.v.Check()
	if errors.Is(err, ErrNoChecksum) {
		r.noSum = true
		return nil
	}
	return err
}
