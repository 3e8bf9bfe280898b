package redis

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/backproof/backproof/engine/redis/rdb"
)

// Flavors: the engine names of Redis and of Valkey, its fork. Both speak the
// same protocol and this package backs up both; they are two engines because
// their RDB versions part ways (Valkey 9 writes RDB 80, which no Redis
// reads, and Redis 7.4+ writes RDB 12, which Valkey refuses), so a backup
// needs a sandbox image of its own flavor and a restore target of its own
// flavor.
const (
	Redis  = "redis"
	Valkey = "valkey"
)

// server is what INFO server says about a server.
type server struct {
	flavor  string // Redis or Valkey
	version string // x.y.z of that flavor (not Valkey's redis_version, which stays 7.2.4)
}

func (s server) String() string {
	name := "Redis"
	if s.flavor == Valkey {
		name = "Valkey"
	}
	return name + " " + s.version
}

// serverOf reads flavor and version from INFO server's fields. Valkey 8+
// says server_name:valkey and valkey_version; Valkey 7.2 only redis_version.
func serverOf(f map[string]string) (server, error) {
	if v := f["valkey_version"]; v != "" || f["server_name"] == Valkey {
		if v == "" {
			v = f["redis_version"]
		}
		return server{Valkey, v}, nil
	}
	if v := f["redis_version"]; v != "" {
		return server{Redis, v}, nil
	}
	return server{}, fmt.Errorf("INFO server: no redis_version")
}

// readsRDB reports whether the server loads (and RESTORE accepts) an RDB
// version. Valkey reads Redis's versions up to 11 and its own from 80: it
// refuses Redis 7.4+'s 12 to 79 as foreign. A server newer than this build
// knows decides for itself.
func (s server) readsRDB(v int) bool {
	newest := s.newestRDB()
	switch {
	case newest == 0:
		return true
	case s.flavor == Valkey && v > 11 && v < rdb.ValkeyMinVersion:
		return false
	}
	return v <= newest
}

// newestRDB is the newest RDB version the server reads, 0 when unknown.
func (s server) newestRDB() int {
	major, minor := majorMinor(s.version)
	if s.flavor == Valkey {
		switch {
		case major >= 10:
			return 0
		case major == 9:
			return 80
		default: // 7.2, 8.0, 8.1
			return 11
		}
	}
	switch {
	case major > 8 || major == 8 && minor > 0:
		return 0
	case major == 8, major == 7 && minor >= 4:
		return 12
	case major == 7 && minor >= 2:
		return 11
	case major == 7:
		return 10
	case major >= 5:
		return 9
	case major == 4:
		return 8
	case major == 3 && minor >= 2:
		return 7
	}
	return 6
}

func majorMinor(v string) (int, int) {
	parts := strings.SplitN(v, ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// writtenBy names what writes an RDB version, for errors.
func writtenBy(rdbVersion int) string {
	switch {
	case rdbVersion >= 80:
		return "Valkey 9 or newer"
	case rdbVersion == 12:
		return "Redis 7.4 or newer"
	case rdbVersion == 11:
		return "Redis 7.2 or Valkey 7.2-8.1"
	case rdbVersion == 10:
		return "Redis 7.0"
	}
	return "an older Redis"
}

// checkFlavor refuses a server of the other flavor: its backups would be
// verified in the wrong image and restored into the wrong servers.
func (e *Engine) checkFlavor(s server) error {
	if s.flavor == e.flavor {
		return nil
	}
	return fmt.Errorf("the server is %s, not %s: set the target's engine to %s", s, e.flavor, s.flavor)
}
