package engine

import "testing"

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
		ok   bool
	}{
		{"1", "2", -1, true},
		{"1.10", "1.9", 1, true},
		{"1.9", "1.9.1", -1, true},
		{"1_2", "1.2", 0, true},
		{"20240102120000", "20231231235959", 1, true},
		{"20240101120000_init", "20240101120000_init", 0, true},
		{"20240101120000_add", "20240102090000_init", -1, true},
		{"007", "7", 0, true},
		{"2.0.0-beta", "2.0.0", 1, true},
		{"", "1", 0, false},
	}
	for _, c := range cases {
		got, ok := CompareVersions(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
	if got := MaxVersion([]string{"1", "1.10", "1.9", "2", "1.2.3"}); got != "2" {
		t.Errorf("MaxVersion = %q", got)
	}
}
