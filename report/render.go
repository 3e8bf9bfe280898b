package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// Formats Render writes.
var Formats = []string{"md", "html", "json"}

// Render writes r in format: md, html or json.
func Render(w io.Writer, r *Report, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "md":
		return markdown(w, r)
	case "html":
		return page.Execute(w, r)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

func markdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# backproof verification report\n\n")
	fmt.Fprintf(&b, "Generated %s; covers verifications since %s. %s\n", stamp(r.Generated), stamp(r.Since), signedNote(r.Signed))
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", t.Name, summaryLine(t.Summary))
		for _, e := range t.Errors {
			fmt.Fprintf(&b, "\n- could not read %s\n", cell(e))
		}
		if len(t.Verifications) == 0 {
			continue
		}
		b.WriteString("\n| started (UTC) | destination | backup | verdict | restore (RTO) | backup age (RPO) | receipt |\n")
		b.WriteString("|---|---|---|---|---|---|---|\n")
		for _, e := range t.Verifications {
			verdict := string(e.Outcome)
			if e.Reason != "" {
				verdict += ": " + e.Reason
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", stamp(e.Started), cell(e.Destination), cell(e.BackupID),
				cell(verdict), seconds(e.RestoreSeconds), seconds(e.BackupAgeSeconds), cell(receiptText(e)))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func signedNote(signed bool) string {
	if signed {
		return "Receipts are checked against the config's signing.trusted_keys."
	}
	return "Signing is not configured: no receipt is authentic."
}

func summaryLine(s Summary) string {
	line := fmt.Sprintf("%d verifications: %d pass, %d fail, %d error; %d of %d receipts authentic.",
		s.Verifications, s.Pass, s.Fail, s.Error, s.Authentic, s.Verifications)
	if s.NotAuthentic > 0 && s.Pass+s.Fail+s.Error < s.Verifications {
		line += fmt.Sprintf(" The %d records that are not authentic count for nothing: look at them.", s.NotAuthentic)
	}
	if s.Pass > 0 {
		line += fmt.Sprintf(" Longest passing restore (RTO) %s; oldest passing backup when verified (RPO) %s; last pass %s.",
			seconds(s.MaxRestoreSeconds), seconds(s.MaxBackupAgeSeconds), stamp(*s.LastPass))
	}
	return line
}

func receiptText(e Entry) string {
	if e.Authentic {
		return "authentic, " + e.Receipt
	}
	return "NOT authentic: " + strings.TrimPrefix(e.Receipt, "not authentic: ")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

// cell keeps a value inside one Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"stamp": stamp, "seconds": seconds, "summary": summaryLine, "receipt": receiptText, "signedNote": signedNote,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>backproof verification report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.fail,.bad{color:#b00}</style>
</head><body>
<h1>backproof verification report</h1>
<p>Generated {{stamp .Generated}}; covers verifications since {{stamp .Since}}. {{signedNote .Signed}}</p>
{{range .Targets}}<h2>{{.Name}}</h2>
<p>{{summary .Summary}}</p>
{{range .Errors}}<p class="bad">could not read {{.}}</p>
{{end}}{{if .Verifications}}<table>
<tr><th>started (UTC)</th><th>destination</th><th>backup</th><th>verdict</th><th>restore (RTO)</th><th>backup age (RPO)</th><th>receipt</th></tr>
{{range .Verifications}}<tr><td>{{stamp .Started}}</td><td>{{.Destination}}</td><td>{{.BackupID}}</td><td class="{{.Outcome}}">{{.Outcome}}{{if .Reason}}: {{.Reason}}{{end}}</td><td>{{seconds .RestoreSeconds}}</td><td>{{seconds .BackupAgeSeconds}}</td><td{{if not .Authentic}} class="bad"{{end}}>{{receipt .}}</td></tr>
{{end}}</table>
{{end}}{{end}}</body></html>
`))
