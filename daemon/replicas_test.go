package daemon

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/backproof/backproof/destination"
)

func TestLiveReplicas(t *testing.T) {
	ref := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	obj := func(id string, age time.Duration) destination.Object {
		return destination.Object{Key: replicaDir + "/" + id + ".json", ModTime: ref.Add(-age)}
	}
	objs := []destination.Object{
		obj("b", 0), obj("a", 10*time.Second), obj("c", 59*time.Second), obj("d", time.Minute),
		obj("old", 101*time.Minute), {Key: replicaDir + "/notes.txt", ModTime: ref},
		{Key: replicaDir + "/deeper/e.json", ModTime: ref},
	}
	live, stale, err := liveReplicas(objs, "b", time.Minute)
	if err != nil || !slices.Equal(live, []string{"a", "b", "c"}) || !slices.Equal(stale, []string{"old"}) {
		t.Fatalf("live %v, stale %v, %v", live, stale, err)
	}
	// Ages count from our own heartbeat, on the store's clock.
	live, _, _ = liveReplicas(objs, "d", time.Minute)
	if !slices.Equal(live, []string{"a", "b", "c", "d"}) {
		t.Errorf("seen from d: %v", live)
	}
	if _, _, err := liveReplicas(objs, "x", time.Minute); err == nil {
		t.Error("no error when our own heartbeat is not listed")
	}
}

// Every target has exactly one owner, spread over the members; when a
// member leaves, only its targets move.
func TestOwnerMovesOnlyTheDeadOnesTargets(t *testing.T) {
	three := []string{"r0", "r1", "r2"}
	two := []string{"r0", "r2"}
	count := map[string]int{}
	for i := range 300 {
		target := fmt.Sprintf("svc-%d", i)
		o := owner(target, three)
		count[o]++
		if o2 := owner(target, two); o != "r1" && o2 != o {
			t.Errorf("%s moved from %s to %s when r1 left", target, o, o2)
		}
		if owner(target, []string{"r2", "r0", "r1"}) != o {
			t.Errorf("%s: owner depends on the members' order", target)
		}
	}
	for _, m := range three {
		if count[m] < 60 {
			t.Errorf("uneven: %v", count)
		}
	}
}
