// Package helm holds the backproof Helm chart (deploy/helm/backproof); its
// tests lint and render it with helm, check the rendered config with
// backproof itself, and install it (server-side dry run) on the test cluster.
package helm

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/backproof/backproof/internal/testenv"
)

const chart = "backproof"

// values a daemon with one target would be installed with; the secret
// reaches the chart through a values file, never argv.
func values(t *testing.T, extra string) string {
	t.Helper()
	v := `
config:
  targets:
    orders:
      engine: postgres
      dsn_file: /run/secrets/backproof/orders-dsn
      schedule: "0 3 * * *"
      destinations: [local]
  destinations:
    local: {type: local, path: /var/lib/backproof}
secrets:
  orders-dsn: "postgres://backup:s3cr3t-sentinel@db:5432/orders"
serviceMonitor: {enabled: true}
prometheusRule: {enabled: true}
` + extra
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Require(t, testenv.EnvHelm), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

type object struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   map[string]any `yaml:"metadata"`
	Spec       map[string]any `yaml:"spec"`
	Data       map[string]any `yaml:"data"`
	Rules      []any          `yaml:"rules"`
}

func render(t *testing.T, args ...string) map[string]object {
	t.Helper()
	out, err := helm(t, append([]string{"template", "bp", chart, "--namespace", "ops"}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	objs := map[string]object{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o object
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode: %v\n%s", err, out)
		}
		if o.Kind != "" {
			objs[o.Kind] = o
		}
	}
	return objs
}

func TestLint(t *testing.T) {
	for _, args := range [][]string{
		{"lint", "--strict", chart},
		{"lint", "--strict", chart, "-f", values(t, "kind: Deployment\npersistence: {enabled: true}\n")},
	} {
		if out, err := helm(t, args...); err != nil {
			t.Errorf("helm %v: %v\n%s", args, err, out)
		}
	}
}

func TestTemplate(t *testing.T) {
	objs := render(t, "-f", values(t, ""))
	for _, k := range []string{"ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"} {
		if _, ok := objs[k]; !ok {
			t.Errorf("no %s rendered", k)
		}
	}

	// The config the daemon gets passes backproof's own check, and runs
	// sandboxes as Pods in the release's namespace.
	conf := objs["ConfigMap"].Data["backproof.yaml"].(string)
	if strings.Contains(conf, "s3cr3t-sentinel") {
		t.Error("the secret is in the ConfigMap")
	}
	var c struct {
		Listen  string
		Sandbox struct {
			Driver     string
			Kubernetes struct{ Namespace string }
		}
	}
	if err := yaml.Unmarshal([]byte(conf), &c); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9847" || c.Sandbox.Driver != "kubernetes" || c.Sandbox.Kubernetes.Namespace != "ops" {
		t.Errorf("config: %+v", c)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "orders-dsn"), []byte("postgres://u:p@127.0.0.1:1/x"), 0o600)
	f := filepath.Join(dir, "backproof.yaml")
	os.WriteFile(f, []byte(strings.ReplaceAll(conf, "/run/secrets/backproof/", dir+"/")), 0o600)
	if out, err := exec.Command(testenv.Binary(t), "config", "check", "-c", f).CombinedOutput(); err != nil {
		t.Errorf("backproof config check of the rendered config: %v\n%s", err, out)
	}

	// Probes, secrets as files, no root.
	pod := objs["StatefulSet"].Spec["template"].(map[string]any)["spec"].(map[string]any)
	ctr := pod["containers"].([]any)[0].(map[string]any)
	if p := ctr["livenessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"]; p != "/healthz" {
		t.Errorf("liveness probe %v", p)
	}
	if p := ctr["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"]; p != "/readyz" {
		t.Errorf("readiness probe %v", p)
	}
	if !strings.Contains(fmt.Sprint(ctr["volumeMounts"]), "/run/secrets/backproof") {
		t.Errorf("secrets not mounted: %v", ctr["volumeMounts"])
	}
	if pod["securityContext"].(map[string]any)["runAsNonRoot"] != true {
		t.Error("runAsNonRoot not set")
	}

	// The Role is deploy/kubernetes/rbac.yaml's.
	data, err := os.ReadFile(filepath.Join("..", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role object
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&role); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(objs["Role"].Rules, role.Rules) {
		t.Errorf("chart Role rules %v\nwant deploy/kubernetes/rbac.yaml's %v", objs["Role"].Rules, role.Rules)
	}

	// The PrometheusRule holds deploy/prometheus/alerts.yml (promtool tests it).
	want, err := os.ReadFile(filepath.Join("..", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chart, "files", "alerts.yml"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s/files/alerts.yml differs from deploy/prometheus/alerts.yml: cp deploy/prometheus/alerts.yml %s/files/ (%v)", chart, chart, err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(want, &rules); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(objs["PrometheusRule"].Spec, rules) {
		t.Error("the PrometheusRule's spec is not alerts.yml")
	}

	// The sandbox quota: off by default, else in the sandbox namespace.
	if _, ok := objs["ResourceQuota"]; ok {
		t.Error("a ResourceQuota by default")
	}
	quota := render(t, "--set", "sandboxQuota.enabled=true,sandboxQuota.pods=3,sandboxQuota.memory=6Gi")["ResourceQuota"]
	if hard := fmt.Sprint(quota.Spec["hard"]); quota.Metadata["namespace"] != "ops" || hard != "map[limits.memory:6Gi pods:3]" {
		t.Errorf("ResourceQuota in %v: %s", quota.Metadata["namespace"], hard)
	}

	// Replicas need a place to meet; the daemon's own NetworkPolicy.
	if out, err := helm(t, "template", "bp", chart, "-f", values(t, ""), "--set", "replicaCount=2"); err == nil || !strings.Contains(out, "needs config.replicas.destination") {
		t.Errorf("replicaCount=2 without replicas.destination: %v\n%s", err, out)
	}
	objs = render(t, "-f", values(t, "replicaCount: 3\nnetworkPolicy: {enabled: true}\n"), "--set", "config.replicas.destination=local")
	if r := objs["StatefulSet"].Spec["replicas"]; r != 3 {
		t.Errorf("replicas %v", r)
	}
	if in := fmt.Sprint(objs["NetworkPolicy"].Spec["ingress"]); in != "[map[ports:[map[port:http protocol:TCP]]]]" {
		t.Errorf("daemon NetworkPolicy ingress %s", in)
	}

	// A Deployment instead; a kind the chart does not know is refused.
	if objs := render(t, "--set", "kind=Deployment"); objs["Deployment"].Kind == "" || objs["StatefulSet"].Kind != "" {
		t.Errorf("kind=Deployment rendered %v", objs)
	}
	if out, err := helm(t, "template", "bp", chart, "--set", "kind=DaemonSet"); err == nil || !strings.Contains(out, "want StatefulSet or Deployment") {
		t.Errorf("kind=DaemonSet: %v\n%s", err, out)
	}
}

// The API server of the test cluster accepts every object the chart renders
// (ServiceMonitor and PrometheusRule need the Prometheus operator's CRDs,
// which the test cluster lacks).
func TestInstallDryRunServer(t *testing.T) {
	path, cfg := testenv.Kubeconfig(t)
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.Namespace(t, cs)
	out, err := helm(t, "install", "bp", chart, "--kubeconfig", path, "--namespace", ns, "--dry-run=server", "--hide-secret",
		"-f", values(t, "serviceMonitor: {enabled: false}\nprometheusRule: {enabled: false}\n"))
	if err != nil {
		t.Fatalf("helm install --dry-run=server: %v\n%s", err, out)
	}
	for _, kind := range []string{"kind: StatefulSet", "kind: Role", "kind: ConfigMap"} {
		if !strings.Contains(out, kind) {
			t.Errorf("no %q in the dry run's manifest:\n%s", kind, out)
		}
	}
	if strings.Contains(out, "s3cr3t-sentinel") || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte("postgres://backup:s3cr3t"))[:20]) {
		t.Error("helm printed the secret")
	}
}
