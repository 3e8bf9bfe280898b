package redis_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/backproof/backproof/engine/enginetest"
	"github.com/backproof/backproof/engine/redis"
	"github.com/backproof/backproof/internal/testenv"
)

// Each database is a private redis-server with the sentinel as password;
// containers are its logical databases.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	servers := map[string]*testenv.Redis{}
	conn := func(t testing.TB, dsn string) *testenv.RedisConn {
		mu.Lock()
		defer mu.Unlock()
		return servers[dsn].Conn(t)
	}
	enginetest.Run(t, enginetest.Harness{
		Kind: redis.Kind,
		NewDatabase: func(t testing.TB) string {
			r := testenv.StartRedis(t, "requirepass "+sentinel, "repl-diskless-sync-delay 0")
			dsn := r.DSN("", sentinel)
			mu.Lock()
			servers[dsn] = r
			mu.Unlock()
			return dsn
		},
		Seed: func(t testing.TB, dsn string, variant int) {
			c := conn(t, dsn)
			c.Must("SELECT", "0")
			for i := 1; i <= 150-60*(variant-1); i++ {
				c.Must("SET", fmt.Sprintf("order:%d", i), fmt.Sprintf("total %d", i*variant))
				c.Must("HSET", fmt.Sprintf("customer:%d", i%20), "tier", strconv.Itoa(i*variant%3), "name", fmt.Sprintf("n %d", i))
			}
			c.Must("SELECT", "1")
			for i := 1; i <= 20; i++ {
				c.Must("SET", fmt.Sprintf("session:%d", i), strings.Repeat("x", i*variant))
			}
		},
		Extra: func(t testing.TB, dsn string) string {
			c := conn(t, dsn)
			c.Must("SELECT", "2")
			c.Must("SET", "extra:1", "a")
			c.Must("SET", "extra:2", "b")
			return "redis.db2"
		},
		Content: func(t testing.TB, dsn string) enginetest.Content {
			c := conn(t, dsn)
			content := enginetest.Content{}
			for db := 0; db < 16; db++ {
				c.Must("SELECT", strconv.Itoa(db))
				keys, _ := c.Must("KEYS", "*").([]any)
				if len(keys) == 0 {
					continue
				}
				items := map[string]string{}
				for _, k := range keys {
					key := k.(string)
					switch c.Must("TYPE", key) {
					case "string":
						items[key] = c.Must("GET", key).(string)
					case "hash":
						var fields []string
						kv := c.Must("HGETALL", key).([]any)
						for i := 0; i+1 < len(kv); i += 2 {
							fields = append(fields, kv[i].(string)+"="+kv[i+1].(string))
						}
						slices.Sort(fields)
						items[key] = strings.Join(fields, ",")
					default:
						t.Fatalf("key %s: type the harness does not read", key)
					}
				}
				content["redis.db"+strconv.Itoa(db)] = items
			}
			return content
		},
		WritingQuery: "DEL order:1",
		NoSchema:     true,
	})
}
