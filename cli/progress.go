package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/backproof/backproof/restore"
)

// progress returns a meter drawing progress bars on stderr, or nil (silent)
// unless both stdout and stderr are terminals and output is not JSON.
func (e *env) progress(asJSON bool) restore.Progress {
	if asJSON || !isTerminal(e.stdout) || !isTerminal(e.stderr) {
		return nil
	}
	w := e.stderr
	return func(what string, total int64) io.WriteCloser {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		return &meter{bar: bar, total: total}
	}
}

// meter ends its bar full when every byte arrived, else where it stopped.
type meter struct {
	bar   *progressbar.ProgressBar
	total int64
	n     int64
}

func (m *meter) Write(p []byte) (int, error) {
	m.n += int64(len(p))
	return m.bar.Write(p)
}

func (m *meter) Close() error {
	if m.n >= m.total {
		return m.bar.Finish()
	}
	return m.bar.Exit()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
