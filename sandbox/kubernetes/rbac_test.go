package kubernetes

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox"
)

// A ServiceAccount bound to exactly deploy/kubernetes/rbac.yaml's Role runs
// sandboxes (files, logs, port-forward, Secret, NetworkPolicy) and cannot
// read secrets, in its namespace or elsewhere, nor Pods elsewhere.
func TestRBAC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const sa = "backproof"
	if _, err := e.cs.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.NewReplacer("SERVICE_ACCOUNT_NAMESPACE", e.ns, "SERVICE_ACCOUNT", sa, "NAMESPACE", e.ns).Replace(string(data)))
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	if err := dec.Decode(&role); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&binding); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		t.Fatalf("rbac.yaml holds more than a Role and a RoleBinding: %v", err)
	}
	if _, err := e.cs.RbacV1().Roles(e.ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().RoleBindings(e.ns).Create(ctx, &binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(600)
	tok, err := e.cs.CoreV1().ServiceAccounts(e.ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(e.cfg)
	cfg.BearerToken = tok.Status.Token
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The authorizer learns of the binding through its informer: wait for it.
	review := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
		Namespace: e.ns, Verb: "create", Resource: "pods", Subresource: "portforward"}}}
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the RoleBinding never took effect: %v %+v", err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	k, err := New(ctx, nil, Options{Namespace: e.ns, Config: cfg, Access: AccessPortForward, Labels: map[string]string{labelTest: e.tag}})
	if err != nil {
		t.Fatalf("New with the Role: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "redis.conf")
	os.WriteFile(conf, []byte("port 6379\nprotected-mode no\nrequirepass x\n"), 0o600)
	inst, err := k.Start(ctx, sandbox.Spec{
		Image: testenv.Require(t, testenv.EnvRedisImage), Cmd: []string{"redis-server", "/data/redis.conf"}, Port: "6379/tcp", DataDir: "/data",
		Ready: "Ready to accept connections", Deadline: time.Now().Add(3 * time.Minute),
		Files: []sandbox.File{{HostPath: conf, Path: "/data/redis.conf"}},
	})
	if err != nil {
		t.Fatalf("Start with the Role: %v", err)
	}
	if err := inst.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := inst.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n, err := k.Sweep(ctx); err != nil {
		t.Errorf("Sweep with the Role = %d, %v", n, err)
	}

	for _, ns := range []string{e.ns, "default", "kube-system"} {
		if _, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list secrets in %s: %v; want forbidden", ns, err)
		}
	}
	if _, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets cluster-wide: %v; want forbidden", err)
	}
	if _, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods in default: %v; want forbidden", err)
	}
}
