package docker_test

import (
	"strings"
	"testing"

	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox/sandboxtest"
)

// The Docker driver passes the drivers' conformance suite.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	sandboxtest.Run(t, sandboxtest.Driver{
		Provider: e.d,
		Leftovers: func(t *testing.T) []string {
			var ids []string
			for _, c := range e.containers(t) {
				ids = append(ids, shortID(c.ID))
			}
			return ids
		},
		PostgresImage: e.image,
		RedisImage:    strings.ReplaceAll(testenv.RedisImage(t), "{major}", "7"),
	})
}

func shortID(id string) string { return id[:min(12, len(id))] }
