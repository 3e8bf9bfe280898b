package mysql

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// The script reader takes whatever storage hands back: it must end on any
// input, with statements, errTruncated or another error, never a panic or a
// loop, and never return more statements than the input has bytes.
func FuzzScriptReader(f *testing.F) {
	for _, seed := range []string{
		"",
		"CREATE TABLE t (a int);\n-- backproof: end\n",
		"INSERT INTO t VALUES ('a;b', \"c\\\"d\", `e;f`); /* ; */ -- x\n",
		"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT 1; END;;\nDELIMITER ;\n",
		"DELIMITER\n",
		"'unterminated",
		"/* unterminated",
		"-- backproof: end\nSELECT 1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := newScriptReader(strings.NewReader(in))
		for n := 0; ; n++ {
			if n > len(in)+1 {
				t.Fatalf("%d statements from %d bytes: the reader loops", n, len(in))
			}
			st, err := r.Next()
			if errors.Is(err, io.EOF) {
				if !r.ended {
					t.Fatal("io.EOF without the end marker")
				}
				return
			}
			if err != nil {
				return
			}
			if st.sql == "" && st.marker == "" {
				t.Fatalf("empty statement at line %d", st.line)
			}
		}
	})
}
