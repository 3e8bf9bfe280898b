package daemon

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/backproof/backproof/verify"
)

//go:embed web/status.html
var pageSource string

var pageTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"age":              age,
	"ageOf":            func(p *float64) string { return agePtr(p) },
	"seconds":          seconds,
	"bytes":            humanBytes,
	"when":             func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"chart":            chart,
	"outcome":          func(o verify.Outcome) string { return string(o) },
	"lastCheckResults": lastCheckResults,
}).Parse(pageSource))

func (d *Daemon) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, d.Status()); err != nil {
		d.Log.Error("rendering the status page", "err", err)
	}
}

// age says how long ago, to the unit that matters: "42s", "5m", "3h", "2d".
func age(since time.Time, now time.Time) string {
	if since.IsZero() {
		return "never"
	}
	return duration(now.Sub(since).Seconds())
}

func agePtr(p *float64) string {
	if p == nil {
		return "never"
	}
	return duration(*p)
}

func duration(s float64) string {
	switch {
	case s < 120:
		return fmt.Sprintf("%.0fs", s)
	case s < 2*3600:
		return fmt.Sprintf("%.0fm", s/60)
	case s < 2*86400:
		return fmt.Sprintf("%.1fh", s/3600)
	}
	return fmt.Sprintf("%.1fd", s/86400)
}

func seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	if s < 10 {
		return fmt.Sprintf("%.2fs", s)
	}
	return duration(s)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// checkRow is one check with its outcome on each destination's newest
// verification.
type checkRow struct {
	Name  string
	Cells []checkCell
}

type checkCell struct {
	Destination, Detail string
	Outcome             verify.Outcome
}

func lastCheckResults(s TargetStatus) []checkRow {
	var rows []checkRow
	index := map[string]int{}
	for _, r := range s.LastVerifications {
		for _, c := range r.Checks {
			i, ok := index[c.Name]
			if !ok {
				i = len(rows)
				index[c.Name] = i
				rows = append(rows, checkRow{Name: c.Name})
			}
			detail := strings.TrimSpace(c.Observed + " " + c.Message)
			rows[i].Cells = append(rows[i].Cells, checkCell{Destination: r.Destination, Detail: detail, Outcome: c.Outcome})
		}
	}
	return rows
}

// chart draws the recent backups: a bar per backup for its stored size and a
// line through the restore times measured by verifications.
func chart(points []Point) template.HTML {
	const w, h, pad = 420.0, 110.0, 18.0
	if len(points) == 0 {
		return template.HTML(`<p class="muted">no backups yet</p>`)
	}
	var maxSize int64
	var maxRestore float64
	for _, p := range points {
		maxSize = max(maxSize, p.Size)
		maxRestore = max(maxRestore, p.RestoreSeconds)
	}
	step := (w - 2*pad) / float64(len(points))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="backup size and restore time of the last %d backups">`,
		w, h, w, h, len(points))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" class="axis"/>`, pad, h-pad, w-pad, h-pad)
	var line []string
	for i, p := range points {
		x := pad + float64(i)*step
		bh := 0.0
		if maxSize > 0 {
			bh = (h - 2*pad) * float64(p.Size) / float64(maxSize)
		}
		class := "bar"
		switch p.Verified {
		case verify.Pass:
			class += " pass"
		case verify.Fail:
			class += " fail"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s, restore %s, %s</title></rect>`,
			class, x+step*0.15, h-pad-bh, math.Max(step*0.7, 1), bh,
			template.HTMLEscapeString(p.ID), humanBytes(p.Size), seconds(p.RestoreSeconds), verifiedText(p.Verified))
		if p.RestoreSeconds > 0 && maxRestore > 0 {
			line = append(line, fmt.Sprintf("%.1f,%.1f", x+step/2, h-pad-(h-2*pad)*p.RestoreSeconds/maxRestore))
		}
	}
	if len(line) > 0 {
		fmt.Fprintf(&b, `<polyline class="restore" points="%s"/>`, strings.Join(line, " "))
		for _, pt := range line {
			xy := strings.Split(pt, ",")
			fmt.Fprintf(&b, `<circle class="restore" cx="%s" cy="%s" r="2.5"/>`, xy[0], xy[1])
		}
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="12" class="legend">size ≤ %s</text>`, pad, humanBytes(maxSize))
	if maxRestore > 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="12" class="legend restore-legend" text-anchor="end">restore ≤ %s</text>`, w-pad, seconds(maxRestore))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped ids
}

func verifiedText(o verify.Outcome) string {
	if o == "" {
		return "not verified"
	}
	return "verification " + string(o)
}
