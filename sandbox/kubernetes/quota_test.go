package kubernetes

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox"
)

// waiting is a slog handler that signals each "waits for room" line.
type waiting chan struct{}

func (w waiting) Enabled(context.Context, slog.Level) bool { return true }
func (w waiting) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "waits for room") {
		w <- struct{}{}
	}
	return nil
}
func (w waiting) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w waiting) WithGroup(string) slog.Handler      { return w }

// A namespace ResourceQuota that is full makes a sandbox wait for room
// instead of failing: it is how the platform bounds verifications across
// daemons. A wait ends with the caller's context, leaving nothing.
func TestQuotaWaits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	quotas := e.cs.CoreV1().ResourceQuotas(e.ns)
	q := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "sandboxes"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}},
	}
	if _, err := quotas.Create(ctx, q, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Admission enforces a quota once its controller has filled in its status.
	for {
		q, err := quotas.Get(ctx, "sandboxes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := q.Status.Hard[corev1.ResourcePods]; ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	signal := make(waiting, 16)
	k, err := New(ctx, slog.New(signal), Options{Namespace: e.ns, Config: e.cfg, Access: AccessPodIP, Disk: 1 << 30,
		Labels: map[string]string{labelTest: e.tag}})
	if err != nil {
		t.Fatal(err)
	}
	image := strings.ReplaceAll(testenv.Require(t, testenv.EnvPGImage), "{major}", "15")
	spec := func() sandbox.Spec {
		s, _ := postgres.New("").Sandbox(image, randHex(8), nil)
		s.Memory, s.CPUs = 256<<20, 0.25
		s.Deadline = time.Now().Add(5 * time.Minute)
		return s
	}
	type result struct {
		inst sandbox.Instance
		err  error
	}
	start := func(ctx context.Context) chan result {
		c := make(chan result, 1)
		go func() {
			inst, err := k.Start(ctx, spec())
			c <- result{inst, err}
		}()
		return c
	}

	first, err := k.Start(ctx, spec())
	if err != nil {
		t.Fatalf("first sandbox: %v", err)
	}
	second := start(ctx)
	select {
	case <-signal:
	case r := <-second:
		t.Fatalf("second sandbox did not wait for the quota: %v", r.err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	running := <-second
	if running.err != nil {
		t.Fatalf("second sandbox after the first was closed: %v", running.err)
	}

	// The wait ends with its context; nothing is left but the running one.
	cctx, cancel := context.WithCancel(ctx)
	third := start(cctx)
	select {
	case <-signal:
	case r := <-third:
		t.Fatalf("third sandbox did not wait for the quota: %v", r.err)
	}
	cancel()
	if r := <-third; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled wait: %v, want context.Canceled", r.err)
	}
	if left := e.leftovers(t); len(left) != 1 {
		t.Errorf("pods left: %v, want the second sandbox's only", left)
	}
	if err := running.inst.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
