package backup

import (
	"errors"
	"io"
	"sync"
)

// fanout writes one stream to several pipes at once. Every write waits for
// all live pipes to take the chunk, so the slowest destination sets the pace
// and nothing is buffered. A pipe whose reader failed is dropped and the rest
// go on; once none is left, Write fails.
type fanout struct {
	sinks []*sink
}

type sink struct {
	w   *io.PipeWriter
	err error // set once the destination stopped reading
}

func newFanout(ws []*io.PipeWriter) *fanout {
	f := &fanout{}
	for _, w := range ws {
		f.sinks = append(f.sinks, &sink{w: w})
	}
	return f
}

func (f *fanout) Write(p []byte) (int, error) {
	var live []*sink
	for _, s := range f.sinks {
		if s.err == nil {
			live = append(live, s)
		}
	}
	if len(live) > 1 {
		var wg sync.WaitGroup
		for _, s := range live[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, s.err = s.w.Write(p)
			}()
		}
		_, live[0].err = live[0].w.Write(p)
		wg.Wait()
	} else if len(live) == 1 {
		_, live[0].err = live[0].w.Write(p)
	}
	var errs []error
	for _, s := range f.sinks {
		if s.err == nil {
			return len(p), nil
		}
		errs = append(errs, s.err)
	}
	return 0, errors.Join(append([]error{errAllDestinationsFailed}, errs...)...)
}

var errAllDestinationsFailed = errors.New("every destination failed")

// close ends every pipe: with EOF when err is nil, so destinations commit
// what they read, or with err, so they discard it.
func (f *fanout) close(err error) {
	for _, s := range f.sinks {
		if err == nil {
			s.w.Close()
		} else {
			s.w.CloseWithError(err)
		}
	}
}
