package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvKubeconfig names the admin kubeconfig of the test cluster scripts/k8s.sh
// starts (scripts/testenv.sh exports it).
const EnvKubeconfig = "BACKPROOF_TEST_KUBECONFIG"

// Kubeconfig returns the test cluster's admin kubeconfig path and its REST
// config; without a cluster the test is skipped (strict mode: fails).
func Kubeconfig(t testing.TB) (string, *rest.Config) {
	t.Helper()
	path := os.Getenv(EnvKubeconfig)
	if path == "" {
		Unavailable(t, "%s is not set; start the test cluster with `scripts/k8s.sh up` and set it to /tmp/backproof-k8s/kubeconfig", EnvKubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("%s: %v", EnvKubeconfig, err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil || !clusterBridge(u.Hostname()) {
		t.Fatalf("%s: the API server %q is not on a bridge of scripts/k8s.sh (bpk8s*)", EnvKubeconfig, cfg.Host)
	}
	return path, cfg
}

// clusterBridge reports whether host is an address of a bridge scripts/k8s.sh
// made for its pods, where the test cluster's API server listens.
func clusterBridge(host string) bool {
	ip := net.ParseIP(host)
	ifs, err := net.Interfaces()
	if ip == nil || err != nil {
		return false
	}
	for _, ifc := range ifs {
		if !strings.HasPrefix(ifc.Name, "bpk8s") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// Namespace creates a namespace of the test's own on the test cluster, waits
// until its default ServiceAccount exists (Pods need it) and deletes it at the
// end of the test.
func Namespace(t testing.TB, cs k8s.Interface) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := uniqueName(t, "bp-", '-', 40)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	w, err := cs.CoreV1().ServiceAccounts(name).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=default"})
	if err != nil {
		t.Fatalf("watch service accounts: %v", err)
	}
	defer w.Stop()
	if _, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
		return name
	}
	select {
	case <-w.ResultChan():
	case <-ctx.Done():
		t.Fatalf("namespace %s: no default ServiceAccount after 2 min (is the controller-manager up?)", name)
	}
	return name
}
