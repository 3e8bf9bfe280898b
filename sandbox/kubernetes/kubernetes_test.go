package kubernetes

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox/docker"
	"github.com/backproof/backproof/sandbox/sandboxtest"
)

const labelTest = "io.backproof.test"

type env struct {
	cfg *rest.Config
	cs  *k8s.Clientset
	ns  string
	tag string
}

// newEnv connects to the test cluster and makes a namespace for the test.
func newEnv(t *testing.T) *env {
	t.Helper()
	_, cfg := testenv.Kubeconfig(t)
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, cs: cs, ns: testenv.Namespace(t, cs), tag: "t" + randHex(4)}
}

func (e *env) provider(t *testing.T, access string) *Kubernetes {
	t.Helper()
	k, err := New(context.Background(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Options{
		Namespace: e.ns, Config: e.cfg, Access: access, Disk: 1 << 30,
		Labels: map[string]string{labelTest: e.tag},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

// pods lists the test's sandbox Pods that are not being deleted.
func (e *env) pods(t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := e.cs.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: labelTest + "=" + e.tag})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func (e *env) leftovers(t *testing.T) []string {
	var names []string
	for _, p := range e.pods(t) {
		names = append(names, p.Name)
	}
	return names
}

// The Kubernetes driver passes the drivers' conformance suite, reaching the
// server at the Pod's address and through a port-forward.
func TestConformance(t *testing.T) {
	for _, access := range []string{AccessPodIP, AccessPortForward} {
		t.Run(access, func(t *testing.T) {
			e := newEnv(t)
			sandboxtest.Run(t, sandboxtest.Driver{
				Provider:      e.provider(t, access),
				Leftovers:     e.leftovers,
				PostgresImage: strings.ReplaceAll(testenv.Require(t, testenv.EnvPGImage), "{major}", "15"),
				RedisImage:    testenv.Require(t, testenv.EnvRedisImage),
			})
		})
	}
}

// A sandbox Pod is locked down: no privilege, capabilities dropped but the
// entrypoint's, seccomp, limits, a deadline, a size-limited data volume, no
// service account token, its password only in a Secret it owns, and a
// NetworkPolicy with no egress that admits only backproof on the port.
func TestPodShape(t *testing.T) {
	e := newEnv(t)
	k := e.provider(t, AccessPodIP)
	image := strings.ReplaceAll(testenv.Require(t, testenv.EnvPGImage), "{major}", "15")
	sentinel := "sentinel" + randHex(8)
	spec, _ := postgres.New("").Sandbox(image, sentinel, nil)
	spec.Memory, spec.CPUs = 512<<20, 0.5
	spec.Deadline = time.Now().Add(5 * time.Minute)
	ctx := context.Background()
	inst, err := k.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Close(ctx)
	name := inst.(*instance).name

	p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(p)
	if strings.Contains(string(raw), sentinel) {
		t.Error("the password is in the Pod object")
	}
	c := p.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || *sc.AllowPrivilegeEscalation || *sc.Privileged || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		!*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context: %+v", sc)
	}
	if got := c.Resources.Limits.Memory().Value(); got != 512<<20 {
		t.Errorf("memory limit %d", got)
	}
	if got := c.Resources.Limits.Cpu().MilliValue(); got != 500 {
		t.Errorf("cpu limit %dm", got)
	}
	if d := p.Spec.ActiveDeadlineSeconds; d == nil || *d < 250 || *d > 301 {
		t.Errorf("activeDeadlineSeconds %v", d)
	}
	if *p.Spec.AutomountServiceAccountToken {
		t.Error("service account token mounted")
	}
	// The data directory on disk, /tmp and /run in memory; the root read-only.
	if v := p.Spec.Volumes; len(v) != 3 || v[0].EmptyDir == nil || v[0].EmptyDir.SizeLimit.Value() != 1<<30 ||
		c.VolumeMounts[0].MountPath != spec.DataDir ||
		v[1].EmptyDir.Medium != corev1.StorageMediumMemory || c.VolumeMounts[1].MountPath != "/tmp" || c.VolumeMounts[2].MountPath != "/run" {
		t.Errorf("volumes %+v mounts %+v", v, c.VolumeMounts)
	}
	// The image was imported into the node, not pulled: no registry digest.
	if d := inst.(*instance).ImageDigest(); d != "" {
		t.Errorf("ImageDigest of an imported image: %q", d)
	}
	if p.Labels[LabelDeadline] != strconv.FormatInt(spec.Deadline.Unix(), 10) || p.Annotations[AnnotationOwner] != docker.Owner() {
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	}

	sec, err := e.cs.CoreV1().Secrets(e.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["POSTGRES_PASSWORD"]) != sentinel || len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != p.UID {
		t.Errorf("secret: owners %v", sec.OwnerReferences)
	}
	np, err := e.cs.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Egress) != 0 || len(np.Spec.Ingress) != 1 ||
		np.Spec.Ingress[0].Ports[0].Port.IntValue() != 5432 ||
		np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "backproof" ||
		np.Spec.PodSelector.MatchLabels[LabelName] != name {
		t.Errorf("network policy: %+v", np.Spec)
	}
	if err := inst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().Secrets(e.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		t.Error("secret left after Close")
	}
}

// Sweep removes the Pods of a process that is gone and those past their
// deadline, and keeps a live process's; New sweeps.
func TestSweep(t *testing.T) {
	e := newEnv(t)
	image := strings.ReplaceAll(testenv.Require(t, testenv.EnvPGImage), "{major}", "15")
	ctx := context.Background()
	start := func(owner string, deadline time.Time) string {
		k := e.provider(t, AccessPodIP)
		k.owner = owner
		spec, _ := postgres.New("").Sandbox(image, randHex(8), nil)
		spec.Deadline = deadline
		inst, err := k.Start(ctx, spec)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		// Not closed: the sweep is to remove it (or not).
		return inst.(*instance).name
	}
	// A pid above pid_max, with a start time: a process that was and is gone.
	host, _ := os.Hostname()
	dead := start(host+"/4194303/12345", time.Now().Add(5*time.Minute))
	live := start(docker.OwnerOf(os.Getppid()), time.Now().Add(5*time.Minute))
	// Its owner (this process) is alive, but its deadline has passed: the
	// label is set back rather than waiting.
	late := start(docker.Owner(), time.Now().Add(5*time.Minute))
	patch := []byte(`{"metadata":{"labels":{"` + LabelDeadline + `":"` + strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10) + `"}}}`)
	if _, err := e.cs.CoreV1().Pods(e.ns).Patch(ctx, late, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	k := e.provider(t, AccessPodIP) // sweeps
	if left := e.leftovers(t); len(left) != 1 || left[0] != live {
		t.Errorf("after New: left %v; want only %s (dead %s, late %s)", left, live, dead, late)
	}
	if n, err := k.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v; want 0", n, err)
	}
}

func TestDigestOf(t *testing.T) {
	for id, want := range map[string]string{
		"docker.io/library/postgres@sha256:0123": "docker.io/library/postgres@sha256:0123",
		"sha256:0123":                            "",
		"":                                       "",
	} {
		if got := digestOf(id); got != want {
			t.Errorf("digestOf(%q) = %q, want %q", id, got, want)
		}
	}
}
