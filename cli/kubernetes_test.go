package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox/kubernetes"
)

// k8sSandbox is a sandbox block with driver kubernetes on the test cluster, in
// a namespace of the test's own (returned with a client to look at it).
func k8sSandbox(t *testing.T, images string) (string, string, *k8s.Clientset) {
	t.Helper()
	path, cfg := testenv.Kubeconfig(t)
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.Namespace(t, cs)
	t.Cleanup(func() {
		if left := livePods(t, cs, ns); len(left) > 0 {
			t.Errorf("sandbox pods left behind: %v", left)
		}
	})
	return fmt.Sprintf(`sandbox:
  driver: kubernetes
  images: {%s}
  memory: 1GiB
  cpus: 1
  timeout: 5m
  kubernetes: {namespace: %s, kubeconfig: %q}`, images, ns, path), ns, cs
}

// livePods names the sandbox Pods of ns that are not being deleted.
func livePods(t *testing.T, cs *k8s.Clientset, ns string) []string {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelSandbox})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var names []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	return names
}

// With sandbox.driver kubernetes (reached through a port-forward, as from a
// laptop), verify passes a good backup of each engine and fails (exit 3) one
// whose restored content disagrees with its manifest: a verdict only the
// server in the Pod can give.
func TestKubernetesVerify(t *testing.T) {
	for _, tc := range []struct {
		engine, target string
		config         func(t *testing.T) string
	}{
		{"postgres", "orders", func(t *testing.T) string {
			top, _, _ := k8sSandbox(t, fmt.Sprintf("postgres: %q", testenv.PostgresImage(t)))
			return twoDestConfig(t, testenv.S3(t).SecretKey, top, "orders", "postgres", appDB(t), "")
		}},
		{"mongodb", "shop", func(t *testing.T) string {
			top, _, _ := k8sSandbox(t, fmt.Sprintf("mongodb: %q", testenv.MongoImage(t)))
			app, _ := mongoAppDB(t)
			return twoDestConfig(t, testenv.S3(t).SecretKey, top, "shop", "mongodb", app, "")
		}},
		{"redis", "cache", func(t *testing.T) string {
			top, _, _ := k8sSandbox(t, fmt.Sprintf("redis: %q", testenv.RedisImage(t)))
			return twoDestConfig(t, testenv.S3(t).SecretKey, top, "cache", "redis", redisSource(t).DSN("", sentinel), "")
		}},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			cfg := tc.config(t)
			ctx := context.Background()
			id := backupCommitted(t, cfg)
			r := runCLI(t, ctx, "verify", tc.target, "-c", cfg, "--backup", id, "--destination", "local", "--json")
			if r.code != ExitOK {
				t.Fatalf("verify a good backup: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if doc := decode[verifyDoc](t, r.stdout); len(doc.Verifications) != 1 || doc.Verifications[0].Outcome != "pass" {
				t.Fatalf("verify: %+v", doc)
			}
			// One more row in the manifest than the backup holds.
			m, dir := localManifestFor(t, cfg, tc.target, id)
			m.Source.Tables[0].Rows++
			data, _ := json.Marshal(m)
			if err := os.WriteFile(filepath.Join(dir, catalog.ManifestName), data, 0o644); err != nil {
				t.Fatal(err)
			}
			r = runCLI(t, ctx, "verify", tc.target, "-c", cfg, "--backup", id, "--destination", "local")
			if r.code != ExitBadBackup || !strings.Contains(r.stdout, "FAIL") {
				t.Fatalf("verify a bad backup: exit %d, want 3:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// restore --sandbox on the cluster serves the data through a port-forward
// until Ctrl-C, which removes the Pod.
func TestKubernetesRestoreSandbox(t *testing.T) {
	top, ns, cs := k8sSandbox(t, fmt.Sprintf("postgres: %q", testenv.PostgresImage(t)))
	cfg := twoDestConfig(t, testenv.S3(t).SecretKey, top, "orders", "postgres", appDB(t), "")
	backupCommitted(t, cfg)
	dsn, stop := holdSandbox(t, "restore", "orders", "-c", cfg, "--sandbox", "--from", "local")
	if !strings.Contains(dsn, "@127.0.0.1:") {
		t.Errorf("connection string %q is not a forward on 127.0.0.1", strings.ReplaceAll(dsn, sentinel, "***"))
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect to the sandbox: %v", err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&n); err != nil || n == 0 {
		t.Errorf("orders in the sandbox: %d, %v", n, err)
	}
	conn.Close(context.Background())
	if left := livePods(t, cs, ns); len(left) != 1 {
		t.Errorf("pods while held: %v", left)
	}
	// Ctrl-C is how a held sandbox ends: exit 0, as with Docker.
	if code := stop(); code != ExitOK {
		t.Errorf("exit %d after Ctrl-C, want 0", code)
	}
	if left := livePods(t, cs, ns); len(left) != 0 {
		t.Errorf("pods after Ctrl-C: %v", left)
	}
}

// A verify killed while its sandbox Pod runs leaves the Pod; the next run
// removes it.
func TestKubernetesKilledRunSwept(t *testing.T) {
	top, ns, cs := k8sSandbox(t, fmt.Sprintf("postgres: %q", testenv.PostgresImage(t)))
	cfg := twoDestConfig(t, testenv.S3(t).SecretKey, top, "orders", "postgres", appDB(t), "")
	id := backupCommitted(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelSandbox})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cmd := exec.Command(testenv.Binary(t), "verify", "orders", "-c", cfg, "--backup", id, "--destination", "local")
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed once its Pod runs.
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Status.Phase == corev1.PodRunning {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	left := livePods(t, cs, ns)
	if len(left) != 1 {
		t.Fatalf("pods after the kill: %v", left)
	}
	r := runCLI(t, context.Background(), "verify", "orders", "-c", cfg, "--backup", id, "--destination", "local")
	if r.code != ExitOK {
		t.Fatalf("next verify: exit %d: %s", r.code, r.stderr)
	}
	for _, p := range livePods(t, cs, ns) {
		if p == left[0] {
			t.Errorf("the killed run's pod %s is still there", p)
		}
	}
}
