package backup

import (
	"errors"
	"io"
	"sync"
	"time"
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
	// A write the destination does not take within stall calls onStall,
	// which fails the pipe (and so the write).
	stall   time.Duration
	onStall func()
}

func newFanout(ws []*io.PipeWriter, onStall []func()) *fanout {
	f := &fanout{}
	for i, w := range ws {
		f.sinks = append(f.sinks, &sink{w: w, onStall: onStall[i]})
	}
	return f
}

func (s *sink) write(p []byte) {
	if s.stall > 0 && s.onStall != nil {
		t := time.AfterFunc(s.stall, s.onStall)
		defer t.Stop()
	}
	_, s.err = s.w.Write(p)
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
				s.write(p)
			}()
		}
		live[0].write(p)
		wg.Wait()
	} else if len(live) == 1 {
		live[0].write(p)
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
