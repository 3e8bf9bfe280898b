package engine_test

import (
	"slices"
	"testing"

	"github.com/backproof/backproof/engine"
)

func TestURLPassword(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want []string
	}{
		{"postgres://app:s3cret@db:5432/orders", []string{"s3cret"}},
		{"mongodb://root:p%40ss%2Fw@h1,h2/shop?authSource=admin", []string{"p%40ss%2Fw", "p@ss/w"}},
		{"redis://:pw@127.0.0.1:6379/0", []string{"pw"}},
		{"redis://127.0.0.1:6379", nil},
		{"mysql://user@host/db", nil},
		{"host=db password=x", nil},
		// A URL parser ends the authority at "#", MongoDB's driver does not:
		// both readings, the longer first, so none is masked only in part.
		{"mongodb://u:p@ss#x@h/db", []string{"p@ss#x", "p"}},
		{"mongodb://0:#@0", []string{"#"}},
		// Without a "/" before it, MongoDB's driver takes a "?" as part of
		// the user (fuzz finding).
		{"mongodb://?:0@0", []string{"0"}},
	} {
		if got := engine.URLPassword(tc.dsn); !slices.Equal(got, tc.want) {
			t.Errorf("URLPassword(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

func TestWordsOr(t *testing.T) {
	if (engine.Words{}).Or() != engine.TablesRows || engine.DatabasesKeys.Or() != engine.DatabasesKeys {
		t.Error("Or: zero words are tables and rows, others stay")
	}
}
