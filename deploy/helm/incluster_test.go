package helm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/backproof/backproof/internal/testenv"
)

// The chart installs on the test cluster with two replicas on the Pod
// network: each reaches the API server through the `kubernetes` Service with
// its own service account, and a database that runs in the cluster. Each
// target is backed up by one replica only, the verification passes in a
// sandbox Pod, and when one replica hangs the other takes its targets.
func TestDaemonInCluster(t *testing.T) {
	kubeconfig, cfg := testenv.Kubeconfig(t)
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Dir(kubeconfig)
	pgImage := strings.ReplaceAll(testenv.Require(t, testenv.EnvPGImage), "{major}", "15")
	ns := testenv.Namespace(t, cs)
	dsn := postgresPod(t, cs, ns, pgImage)
	testenv.Exec(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);
		INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g`)

	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(repo))
	image := "backproof-test/daemon:" + hex.EncodeToString(sum[:6])
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "BACKPROOF_K8S_DIR="+state)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("bash", filepath.Join(repo, "scripts/image.sh"), "--tag", image)
	run("bash", filepath.Join(repo, "scripts/k8s.sh"), "import", image)

	// The replicas meet on a local destination both mount: one node, one directory.
	shared, err := os.MkdirTemp("", "backproof-replicas-")
	if err != nil {
		t.Fatal(err)
	}
	replicas := []*replica{{pod: "bp-backproof-0"}, {pod: "bp-backproof-1"}}
	t.Cleanup(func() { stopDaemons(t, cs, ns, replicas, shared) })
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	targets := []string{"orders", "billing", "users", "search", "audit", "mail"}
	var tb strings.Builder
	for _, tg := range targets[1:] {
		fmt.Fprintf(&tb, "    %s: {engine: postgres, dsn_file: /run/secrets/backproof/dsn, schedule: \"@every 5s\", destinations: [shared]}\n", tg)
	}
	repoName, tag, _ := strings.Cut(image, ":")
	vals := fmt.Sprintf(`
image: {repository: %q, tag: %q, pullPolicy: Never}
replicaCount: 2
env:
  - {name: BACKPROOF_LEASE_TTL, value: 10s}
extraVolumes:
  - {name: shared, hostPath: {path: %q, type: Directory}}
extraVolumeMounts:
  - {name: shared, mountPath: /shared}
config:
  replicas: {destination: shared, ttl: 15s}
  sandbox:
    images: {postgres: %q}
  destinations:
    shared: {type: local, path: /shared}
  targets:
%s    orders:
      engine: postgres
      dsn_file: /run/secrets/backproof/dsn
      schedule: "@every 5s"
      destinations: [shared]
      verify:
        schedule: "@every 10s"
        checks:
          - {name: orders-present, query: "SELECT count(*) FROM orders", expect: "= 500"}
secrets:
  dsn: %q
`, repoName, tag, shared, pgImage, tb.String(), dsn)
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(vals), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := helm(t, "install", "bp", chart, "--kubeconfig", kubeconfig, "--namespace", ns, "-f", f); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}

	defer func() {
		if t.Failed() {
			for _, r := range replicas {
				daemonLogs(t, cs, ns, r.pod)
			}
		}
	}()
	testenv.Eventually(t, 5*time.Minute, "both replicas to see each other", func() bool {
		for _, r := range replicas {
			if r.addr == "" {
				p, err := cs.CoreV1().Pods(ns).Get(context.Background(), r.pod, metav1.GetOptions{})
				if err != nil || p.Status.PodIP == "" {
					return false
				}
				r.addr = net.JoinHostPort(p.Status.PodIP, "9847")
			}
			if m, err := r.scrape(); err != nil || m["backproof_replicas_live"] != 2 {
				return false
			}
		}
		return true
	})

	// While both see both, each target has one owner and only its owner
	// backs it up and verifies it. A replica that misses the other's
	// heartbeat for a TTL (a stall on a busy machine) runs everything for a
	// while, the leases keeping them apart: the count starts again.
	verifications := `backproof_verify_duration_seconds_count{target="orders"}`
	var before []map[string]float64
	owner := map[string]int{}
	testenv.Eventually(t, 5*time.Minute, "every target backed up twice more and orders verified, by their owners", func() bool {
		now, err := scrapeAll(replicas)
		if err != nil {
			return false
		}
		if now[0]["backproof_replicas_live"] != 2 || now[1]["backproof_replicas_live"] != 2 {
			before = nil
			return false
		}
		if before == nil {
			before, owner = now, owners(t, now, targets)
			return false
		}
		for i, r := range replicas {
			for _, tg := range targets {
				if owner[tg] != i && now[i][attempts(tg)] != before[i][attempts(tg)] {
					t.Fatalf("%s backed up %s, owned by %s", r.pod, tg, replicas[owner[tg]].pod)
				}
			}
			if owner["orders"] != i && now[i][verifications] != before[i][verifications] {
				t.Fatalf("%s verified orders, owned by %s", r.pod, replicas[owner["orders"]].pod)
			}
		}
		for _, tg := range targets {
			if now[0][attempts(tg)]+now[1][attempts(tg)]-before[0][attempts(tg)]-before[1][attempts(tg)] < 2 {
				return false
			}
		}
		o := owner["orders"]
		verdict := now[o][`backproof_verify_last_result{target="orders"}`]
		if verdict == 0 && now[o][verifications] > before[o][verifications] {
			t.Fatalf("the verification of orders failed (a bad backup) on %s", replicas[o].pod)
		}
		return verdict == 1 && now[o][verifications] > before[o][verifications]
	})

	// The replica with more targets hangs (its container frozen): once its
	// heartbeat is older than the TTL, the other backs up its targets. The
	// kubelet restarts a frozen container after about 90 s (its liveness
	// probe, then the grace period): the handover must come well before.
	victim := 0
	if n := len(targets) - len(ownedBy(owner, 0)); n > len(ownedBy(owner, 0)) {
		victim = 1
	}
	survivor := replicas[1-victim]
	t.Logf("%s owns %v, %s owns %v; freezing %s", replicas[0].pod, ownedBy(owner, 0), replicas[1].pod, ownedBy(owner, 1), replicas[victim].pod)
	restarts := restartCount(t, cs, ns, replicas[victim].pod)
	frozen := time.Now()
	freeze(t, cs, state, ns, replicas[victim].pod)
	testenv.Eventually(t, 80*time.Second, survivor.pod+" to commit backups of "+strings.Join(ownedBy(owner, victim), ", "), func() bool {
		now, err := survivor.scrape()
		if err != nil || now["backproof_replicas_live"] != 1 {
			return false
		}
		for _, tg := range ownedBy(owner, victim) {
			if now[`backproof_backup_last_success_timestamp_seconds{target="`+tg+`"}`] < float64(frozen.UnixNano())/1e9 {
				return false
			}
		}
		return true
	})
	if n := restartCount(t, cs, ns, replicas[victim].pod); n != restarts {
		t.Fatalf("%s restarted during the freeze (%d restarts, %d before): the handover proves nothing", replicas[victim].pod, n, restarts)
	}
	t.Logf("%s committed backups of all of them %s after the freeze (ttl 15s, schedules every 5s)", survivor.pod, time.Since(frozen).Round(100*time.Millisecond))
}

// owners reads each target's owner from both replicas' metrics; each
// target must have exactly one.
func owners(t *testing.T, now []map[string]float64, targets []string) map[string]int {
	t.Helper()
	owner := map[string]int{}
	for _, tg := range targets {
		switch {
		case now[0][owned(tg)] == 1 && now[1][owned(tg)] == 0:
			owner[tg] = 0
		case now[0][owned(tg)] == 0 && now[1][owned(tg)] == 1:
			owner[tg] = 1
		default:
			t.Fatalf("target %s: owned %v by one replica, %v by the other", tg, now[0][owned(tg)], now[1][owned(tg)])
		}
	}
	return owner
}

func restartCount(t *testing.T, cs *k8s.Clientset, ns, pod string) int32 {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil || len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("pod %s: %v", pod, err)
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

func owned(target string) string { return `backproof_target_owned{target="` + target + `"}` }
func attempts(target string) string {
	return `backproof_backup_attempts_total{target="` + target + `"}`
}

func ownedBy(owner map[string]int, i int) []string {
	var out []string
	for tg, o := range owner {
		if o == i {
			out = append(out, tg)
		}
	}
	return out
}

type replica struct {
	pod, addr string
}

// scrape reads the replica's metrics by series (histograms as their
// _bucket, _sum and _count series).
func (r *replica) scrape() (map[string]float64, error) {
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + r.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", r.pod, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		i := strings.LastIndexByte(l, ' ')
		if strings.HasPrefix(l, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out, nil
}

func scrapeAll(replicas []*replica) ([]map[string]float64, error) {
	var out []map[string]float64
	for _, r := range replicas {
		m, err := r.scrape()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// postgresPod runs a PostgreSQL server as a Pod of the namespace and returns
// its DSN at the Pod's address, once it answers.
func postgresPod(t *testing.T, cs *k8s.Clientset, ns, image string) string {
	t.Helper()
	ctx := context.Background()
	password := rand.Text()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-db"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "postgres", Image: image, ImagePullPolicy: corev1.PullNever,
			Env: []corev1.EnvVar{{Name: "POSTGRES_PASSWORD", Value: password}},
		}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var dsn string
	testenv.Eventually(t, 3*time.Minute, "the database Pod to answer", func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || p.Status.PodIP == "" {
			return false
		}
		dsn = fmt.Sprintf("postgres://postgres:%s@%s/postgres?sslmode=disable", password, net.JoinHostPort(p.Status.PodIP, "5432"))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, dsn)
		if err != nil {
			return false
		}
		conn.Close(cctx)
		return true
	})
	return dsn
}

// freeze stops every process of the Pod's daemon container where it stands
// (the cgroup freezer), as a hung node would; it thaws at the test's end.
func freeze(t *testing.T, cs *k8s.Clientset, state, ns, pod string) {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil || len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("pod %s: %v", pod, err)
	}
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	ctr := func(verb string) error {
		out, err := exec.Command("ctr", "-a", filepath.Join(state, "containerd", "containerd.sock"), "-n", "k8s.io", "tasks", verb, id).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr tasks %s %s: %v: %s", verb, id, err, out)
		}
		return nil
	}
	// Under load runc can fail to freeze every process of the cgroup in its
	// time ("unable to freeze"); it thaws them again, so pausing is tried
	// again (seen once at load 25).
	for try := 1; ; try++ {
		err := ctr("pause")
		if err == nil {
			break
		}
		if try == 5 || !strings.Contains(err.Error(), "unable to freeze") {
			t.Fatal(err)
		}
		t.Logf("%v; pausing again", err)
	}
	t.Cleanup(func() {
		if err := ctr("resume"); err != nil {
			t.Log(err)
		}
	})
}

// stopDaemons removes the StatefulSet and its Pods, and once they are gone,
// the directory they wrote to.
func stopDaemons(t *testing.T, cs *k8s.Clientset, ns string, replicas []*replica, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cs.AppsV1().StatefulSets(ns).Delete(ctx, "bp-backproof", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete the daemons: %v", err)
	}
	grace := int64(1)
	for _, r := range replicas {
		err := cs.CoreV1().Pods(ns).Delete(ctx, r.pod, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		for ; err == nil; time.Sleep(200 * time.Millisecond) {
			_, err = cs.CoreV1().Pods(ns).Get(ctx, r.pod, metav1.GetOptions{})
		}
		if !apierrors.IsNotFound(err) {
			t.Errorf("pod %s still there: %v", r.pod, err)
			return
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Error(err)
	}
}

// daemonLogs logs the tail of a daemon Pod's output.
func daemonLogs(t *testing.T, cs *k8s.Clientset, ns, pod string) {
	t.Helper()
	tail := int64(60)
	raw, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{TailLines: &tail}).DoRaw(context.Background())
	if err != nil {
		p, _ := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
		t.Logf("no logs of %s: %v; pod: %+v", pod, err, p.Status)
		return
	}
	t.Logf("%s output:\n%s", pod, raw)
}
