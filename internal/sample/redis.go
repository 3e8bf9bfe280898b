package sample

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Redis is what SeedRedis writes: keys per database.
var Redis = map[int]int64{0: 18, 5: 3}

// RedisDoer runs one Redis command (testenv.RedisConn does).
type RedisDoer interface {
	Do(args ...string) (any, error)
}

// SeedRedis fills databases 0 and 5 with every data type in the encodings
// Redis picks for small and large values: strings (text, integer, binary,
// large incompressible, compressible), hashes, lists, sets (integers,
// strings, large), sorted sets, a stream with a consumer group and pending
// entries, keys with expiries, and a function library.
func SeedRedis(c RedisDoer) error {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return string(b)
	}
	cmds := [][]string{
		{"SELECT", "0"},
		{"SET", "str:plain", "hello world"},
		{"SET", "str:int", "123456789"},
		{"SET", "str:bin", "\x00\xff\r\n binary \x01"},
		{"SET", "str:big", random(200 << 10)},
		{"SET", "str:compressible", strings.Repeat("abc", 10000)},
		{"HSET", "hash:small", "f1", "v1", "f2", "2"},
		{"RPUSH", "list:small", "a", "b", "c", "1", "2", "3"},
		{"SADD", "set:int", "1", "2", "3", "-40", "1000000"},
		{"SADD", "set:str", "a", "b", "c"},
		{"ZADD", "zset:small", "1", "a", "2.5", "b", "-inf", "c"},
		{"SET", "ttl:session", "s3cr3t-session", "EX", "3600"},
		{"HSET", "ttl:hash", "user", "42"},
		{"PEXPIRE", "ttl:hash", "7200000"},
		{"RPUSH", "ttl:list", "x"},
		{"EXPIREAT", "ttl:list", "4102444800"}, // 2100-01-01
	}
	big := func(cmd, key string, n int, member func(i int) []string) {
		args := []string{cmd, key}
		for i := range n {
			args = append(args, member(i)...)
		}
		cmds = append(cmds, args)
	}
	big("HSET", "hash:big", 1000, func(i int) []string { return []string{"field" + strconv.Itoa(i), random(20)} })
	big("RPUSH", "list:big", 5000, func(i int) []string { return []string{strconv.Itoa(i * 7)} })
	big("SADD", "set:big", 1000, func(i int) []string { return []string{"member-" + strconv.Itoa(i)} })
	big("ZADD", "zset:big", 500, func(i int) []string {
		return []string{strconv.FormatFloat(float64(i)/3, 'g', -1, 64), "m" + strconv.Itoa(i)}
	})
	for i := range 50 {
		cmds = append(cmds, []string{"XADD", "stream:events", fmt.Sprintf("%d-1", 1700000000000+i), "n", strconv.Itoa(i), "kind", "order"})
	}
	cmds = append(cmds,
		[]string{"XGROUP", "CREATE", "stream:events", "workers", "0"},
		[]string{"XREADGROUP", "GROUP", "workers", "w1", "COUNT", "10", "STREAMS", "stream:events", ">"},
		[]string{"XACK", "stream:events", "workers", "1700000000000-1", "1700000000001-1", "1700000000002-1"},
		[]string{"SELECT", "5"},
		[]string{"SET", "other:str", "in db 5", "EX", "86400"},
		[]string{"HSET", "other:hash", "a", "1", "b", "2", "c", "3"},
		[]string{"ZADD", "other:zset", "10", "x", "20", "y"},
		[]string{"SELECT", "0"},
		[]string{"FUNCTION", "LOAD", "REPLACE", "#!lua name=samplelib\nredis.register_function('sample_one', function() return 1 end)"},
	)
	for _, cmd := range cmds {
		if _, err := c.Do(cmd...); err != nil {
			return fmt.Errorf("%s %s: %w", cmd[0], cmd[1], err)
		}
	}
	return nil
}

// RedisItem is one key as RedisSnapshot sees it.
type RedisItem struct {
	Type     string
	Value    string // canonical: members sorted where order means nothing
	ExpireMs int64  // PEXPIRETIME: Unix ms, or -1
}

// RedisSnapshot reads every key of the given databases with its type,
// value and expiry, and the function libraries (key "functions"). Keys are
// "db:key".
func RedisSnapshot(c RedisDoer, dbs ...int) (map[string]RedisItem, error) {
	out := map[string]RedisItem{}
	do := func(args ...string) (any, error) { return c.Do(args...) }
	for _, db := range dbs {
		if _, err := do("SELECT", strconv.Itoa(db)); err != nil {
			return nil, err
		}
		keys, err := do("KEYS", "*")
		if err != nil {
			return nil, err
		}
		for _, k := range keys.([]any) {
			key := k.(string)
			typ, err := do("TYPE", key)
			if err != nil {
				return nil, err
			}
			var reads [][]string
			switch typ {
			case "string":
				reads = [][]string{{"GET", key}}
			case "hash":
				reads = [][]string{{"HGETALL", key}}
			case "list":
				reads = [][]string{{"LRANGE", key, "0", "-1"}}
			case "set":
				reads = [][]string{{"SMEMBERS", key}}
			case "zset":
				reads = [][]string{{"ZRANGE", key, "0", "-1", "WITHSCORES"}}
			case "stream":
				reads = [][]string{{"XRANGE", key, "-", "+"}, {"XINFO", "GROUPS", key}, {"XPENDING", key, "workers"}}
			}
			var parts []string
			for _, r := range reads {
				v, err := do(r...)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", r[0], key, err)
				}
				parts = append(parts, canonical(r[0], v))
			}
			exp, err := do("PEXPIRETIME", key)
			if err != nil {
				return nil, err
			}
			out[strconv.Itoa(db)+":"+key] = RedisItem{Type: typ.(string), Value: strings.Join(parts, " | "), ExpireMs: exp.(int64)}
		}
	}
	libs, err := do("FUNCTION", "LIST")
	if err != nil {
		return nil, err
	}
	out["functions"] = RedisItem{Type: "functions", Value: canonical("FUNCTION", libs)}
	return out, nil
}

func canonical(cmd string, v any) string {
	switch cmd {
	case "SMEMBERS":
		return sorted(v.([]any), 1)
	case "HGETALL":
		return sorted(v.([]any), 2)
	case "FUNCTION":
		return sorted(v.([]any), 1)
	case "ZRANGE":
		// Scores as numbers: Redis 7.0 prints 17 digits (0.33333333333333331),
		// 7.2+ and Valkey the shortest form of the same double.
		items := slices.Clone(v.([]any))
		for i := 1; i < len(items); i += 2 {
			if s, ok := items[i].(string); ok {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					items[i] = strconv.FormatFloat(f, 'g', -1, 64)
				}
			}
		}
		return fmt.Sprintf("%q", items)
	}
	return fmt.Sprintf("%q", v)
}

// sorted renders a list of groups of n elements in sorted order.
func sorted(v []any, n int) string {
	var groups []string
	for i := 0; i+n <= len(v); i += n {
		groups = append(groups, fmt.Sprintf("%q", v[i:i+n]))
	}
	sort.Strings(groups)
	return strings.Join(groups, ",")
}

// DiffRedis lists how got differs from want; expiries may differ by up to
// toleranceMs.
func DiffRedis(want, got map[string]RedisItem, toleranceMs int64) []string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+k)
		case g.Type != w.Type:
			diffs = append(diffs, fmt.Sprintf("%s: type %s, want %s", k, g.Type, w.Type))
		case g.Value != w.Value:
			diffs = append(diffs, fmt.Sprintf("%s: value differs:\n got %.200s\nwant %.200s", k, g.Value, w.Value))
		case (g.ExpireMs < 0) != (w.ExpireMs < 0) || abs(g.ExpireMs-w.ExpireMs) > toleranceMs:
			diffs = append(diffs, fmt.Sprintf("%s: expires at %d, want %d", k, g.ExpireMs, w.ExpireMs))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected "+k)
		}
	}
	sort.Strings(diffs)
	return diffs
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
