package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

const sentinel = "S3ntinel-p4ss"

func TestString(t *testing.T) {
	r := New(
		"postgres://app:"+sentinel+"@db:5432/orders",
		"host=db user=app password='"+sentinel+"x' dbname=orders",
		"AKIA-key-id",
		"p@ss/"+sentinel,
	)
	for _, in := range []string{
		"connect postgres://app:" + sentinel + "@db:5432/orders failed",
		"FATAL: password " + sentinel + " rejected",
		"escaped: p%40ss%2F" + sentinel,
		"kv: " + sentinel + "x",
		"key AKIA-key-id denied",
	} {
		out := r.String(in)
		if strings.Contains(out, sentinel) || strings.Contains(out, "AKIA-key-id") || !strings.Contains(out, Mask) {
			t.Errorf("String(%q) = %q", in, out)
		}
	}
	if got := r.String("nothing secret here"); got != "nothing secret here" {
		t.Errorf("changed innocent text: %q", got)
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(sentinel).Handler(slog.NewJSONHandler(&buf, nil)))
	log.With("dsn", "pw="+sentinel).WithGroup("g").Info("msg "+sentinel,
		"error", errors.New("failed with "+sentinel),
		"nested", slog.GroupValue(slog.String("k", sentinel)),
		"n", 3)
	if strings.Contains(buf.String(), sentinel) {
		t.Fatalf("sentinel in log output: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"n":3`) {
		t.Errorf("non-string attribute lost: %s", buf.String())
	}
}
