// Package kubernetes runs sandboxes as Pods through client-go. Each sandbox is
// a Pod in one namespace with a NetworkPolicy that admits only backproof to
// the database port and allows no egress, its environment (passwords) in a
// Secret the Pod owns, its data on a size-limited emptyDir, and
// activeDeadlineSeconds from the sandbox's deadline. Pods carry the same
// owner and deadline marks as the Docker driver's containers, so the next
// run removes what a killed one left behind. backproof reaches the server at
// the Pod's address (in the cluster) or through a port-forward on
// 127.0.0.1 (from outside).
package kubernetes

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/klog/v2"

	"github.com/backproof/backproof/sandbox"
	"github.com/backproof/backproof/sandbox/docker"
)

// Marks on every sandbox Pod. The owner (host/pid/start-ticks) holds a "/",
// which label values may not: it is an annotation.
const (
	LabelSandbox    = docker.LabelSandbox  // "1"
	LabelDeadline   = docker.LabelDeadline // unix seconds after which it may be removed
	LabelName       = "io.backproof.pod"   // the Pod's name, for its NetworkPolicy
	AnnotationOwner = docker.LabelOwner
)

// Access modes: how backproof reaches a sandbox's server.
const (
	AccessAuto        = "auto"         // pod-ip in the cluster, port-forward outside
	AccessPodIP       = "pod-ip"       // the Pod's address
	AccessPortForward = "port-forward" // a forward on 127.0.0.1 through the API server
)

// capabilities are the Docker driver's: what database images' entrypoints
// need to fix data directory ownership and switch to their own user.
var capabilities = []corev1.Capability{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}

// Options configure the driver.
type Options struct {
	Namespace  string // where sandbox Pods run; required
	Kubeconfig string // "": in-cluster config, else $KUBECONFIG or ~/.kube/config
	Access     string // AccessAuto ("" too), AccessPodIP or AccessPortForward
	// Disk is the size limit of each sandbox's data volume, in bytes (0: none).
	Disk int64
	// ClientLabels select backproof's own Pods, the only ones the sandbox's
	// NetworkPolicy admits (in ClientNamespace: the daemon's namespace in the
	// cluster, else Namespace).
	ClientLabels    map[string]string
	ClientNamespace string
	// Labels are added to every Pod (tests use one to find their own).
	Labels map[string]string
	// Config, when set, is used instead of Kubeconfig (tests).
	Config *rest.Config
}

// Kubernetes starts sandboxes as Pods.
type Kubernetes struct {
	log   *slog.Logger
	cfg   *rest.Config
	api   *client
	opts  Options
	owner string
	// forward: reach servers through port-forwards.
	forward bool
}

var _ sandbox.Provider = (*Kubernetes)(nil)
var _ sandbox.Digester = (*instance)(nil)

var setLogger sync.Once

// New connects to the cluster, checks that sandbox Pods can be listed in the
// namespace, and removes leftover sandboxes there.
func New(ctx context.Context, log *slog.Logger, o Options) (*Kubernetes, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// client-go reports through klog (a port-forward's lost connection):
	// into our log, not onto stderr.
	setLogger.Do(func() { klog.SetSlogLogger(log.With("component", "client-go")) })
	if o.Namespace == "" {
		return nil, errors.New("sandbox.kubernetes.namespace is not set")
	}
	cfg, inCluster, err := restConfig(o)
	if err != nil {
		return nil, fmt.Errorf("%w: kubernetes: %v", sandbox.ErrUnavailable, err)
	}
	api, err := newClient(cfg, o.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%w: kubernetes: %v", sandbox.ErrUnavailable, err)
	}
	if o.ClientNamespace == "" {
		o.ClientNamespace = o.Namespace
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && inCluster {
			o.ClientNamespace = strings.TrimSpace(string(b))
		}
	}
	if o.ClientLabels == nil {
		o.ClientLabels = map[string]string{"app.kubernetes.io/name": "backproof"}
	}
	k := &Kubernetes{log: log, cfg: cfg, api: api, opts: o, owner: docker.Owner()}
	switch o.Access {
	case "", AccessAuto:
		k.forward = !inCluster
	case AccessPodIP:
	case AccessPortForward:
		k.forward = true
	default:
		return nil, fmt.Errorf("sandbox.kubernetes.access %q: want auto, pod-ip or port-forward", o.Access)
	}
	if _, err := k.Sweep(ctx); err != nil {
		return nil, fmt.Errorf("%w: kubernetes namespace %s: %v", sandbox.ErrUnavailable, o.Namespace, err)
	}
	return k, nil
}

func restConfig(o Options) (cfg *rest.Config, inCluster bool, err error) {
	if o.Config != nil {
		return rest.CopyConfig(o.Config), false, nil
	}
	if o.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err = rest.InClusterConfig()
		return cfg, err == nil, err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	return cfg, false, err
}

// Start implements sandbox.Provider.
func (k *Kubernetes) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Instance, error) {
	port, err := parsePort(spec.Port)
	if err != nil {
		return nil, err
	}
	created, err := k.create(ctx, spec, k.pod(spec, port))
	if err != nil {
		return nil, err
	}
	inst := &instance{k: k, name: created.Name, uid: created.UID, ref: spec.Image}
	fail := func(err error) (sandbox.Instance, error) {
		msg := strings.TrimPrefix(err.Error(), sandbox.ErrUnavailable.Error()+": ")
		if tail := inst.Logs(context.WithoutCancel(ctx)); tail != "" {
			msg += "; container output: " + tail
		}
		inst.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start sandbox %s: %w", spec.Image, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%w: start sandbox %s: %s", sandbox.ErrUnavailable, spec.Image, msg)
	}
	wctx := ctx // bounded by the deadline: past it, the start is an error
	if !spec.Deadline.IsZero() {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, spec.Deadline)
		defer cancel()
	}
	// The server cannot start before its Secret exists, and that is made
	// after the NetworkPolicy: it never serves unprotected.
	if err := k.protect(wctx, created, spec, port); err != nil {
		return fail(err)
	}
	if len(spec.Files) > 0 {
		if err := inst.preload(wctx, spec.Files); err != nil {
			return fail(err)
		}
	}
	p, err := inst.waitRunning(wctx)
	if err != nil {
		return fail(err)
	}
	inst.imageID = containerImageID(p)
	if err := inst.waitReady(wctx, spec.Ready, max(spec.ReadyCount, 1)); err != nil {
		return fail(err)
	}
	if k.forward {
		if err := inst.portForward(wctx, port); err != nil {
			return fail(err)
		}
	} else {
		inst.host, inst.port = p.Status.PodIP, port
	}
	k.log.DebugContext(ctx, "sandbox ready", "image", spec.Image, "pod", inst.name, "host", inst.host, "port", inst.port)
	return inst, nil
}

// quotaPoll bounds the wait between tries of a create a full ResourceQuota
// refused. The quota's usage is recomputed by its controller some time after
// a Pod goes, so a Pod's deletion is no signal to try at once.
var quotaPoll = [2]time.Duration{500 * time.Millisecond, 10 * time.Second}

// create creates the Pod. A namespace ResourceQuota that is full (the
// platform's bound on verifications across daemons) is waited out until
// ctx ends or the sandbox's deadline passes; any other refusal is final.
func (k *Kubernetes) create(ctx context.Context, spec sandbox.Spec, pod *corev1.Pod) (*corev1.Pod, error) {
	wait, since := quotaPoll[0], time.Now()
	for {
		// Created whatever ctx says, like the Docker driver's containers: a
		// create the server completes after the caller left would be a Pod
		// with no name to remove it by.
		setDeadline(pod, spec) // counted from the Pod's start: what is left of it now
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		created := &corev1.Pod{}
		err := k.api.pods.create(cctx, pod, created)
		cancel()
		if err == nil {
			return created, nil
		}
		if !quotaFull(err) {
			return nil, fmt.Errorf("%w: start sandbox %s: create pod in namespace %s: %v", sandbox.ErrUnavailable, spec.Image, k.opts.Namespace, err)
		}
		if wait == quotaPoll[0] {
			k.log.InfoContext(ctx, "sandbox waits for room in the namespace's ResourceQuota", "namespace", k.opts.Namespace, "image", spec.Image, "quota", err.Error())
		}
		var late <-chan time.Time
		if !spec.Deadline.IsZero() {
			late = time.After(time.Until(spec.Deadline))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start sandbox %s: waiting %s for room in namespace %s's ResourceQuota: %w", spec.Image, time.Since(since).Round(time.Second), k.opts.Namespace, context.Cause(ctx))
		case <-late:
			return nil, fmt.Errorf("%w: start sandbox %s: namespace %s's ResourceQuota stayed full for %s, until the sandbox's deadline: %v", sandbox.ErrUnavailable, spec.Image, k.opts.Namespace, time.Since(since).Round(time.Second), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, quotaPoll[1])
	}
}

// setDeadline sets the Pod's activeDeadlineSeconds to what is left until
// the sandbox's deadline.
func setDeadline(p *corev1.Pod, spec sandbox.Spec) {
	if !spec.Deadline.IsZero() {
		s := max(int64(time.Until(spec.Deadline).Seconds())+1, 1)
		p.Spec.ActiveDeadlineSeconds = &s
	}
}

// quotaFull says whether the API server refused a create because a
// ResourceQuota of the namespace is used up.
func quotaFull(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota")
}

func parsePort(s string) (int, error) {
	n, proto, _ := strings.Cut(s, "/")
	p, err := strconv.Atoi(n)
	if err != nil || p <= 0 || p > 65535 || (proto != "" && proto != "tcp") {
		return 0, fmt.Errorf("sandbox port %q: want PORT or PORT/tcp", s)
	}
	return p, nil
}

const (
	serverContainer  = "server"
	preloadContainer = "preload"
	dataVolume       = "data"
)

// pod builds the sandbox Pod: the image's own entrypoint with spec.Cmd as its
// arguments (Docker's CMD), never restarted, no service account token.
func (k *Kubernetes) pod(spec sandbox.Spec, port int) *corev1.Pod {
	name := "backproof-sandbox-" + randHex(5)
	labels := map[string]string{LabelSandbox: "1", LabelName: name}
	annotations := map[string]string{AnnotationOwner: k.owner}
	if !spec.Deadline.IsZero() {
		labels[LabelDeadline] = strconv.FormatInt(spec.Deadline.Unix(), 10)
	}
	for _, m := range []map[string]string{k.opts.Labels, spec.Labels} {
		for key, v := range m {
			// A value a label cannot hold (a backup id with "/") is kept as an annotation.
			if len(validation.IsQualifiedName(key)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
				labels[key] = v
			} else {
				annotations[key] = v
			}
		}
	}

	// One emptyDir at the data directory, and one per other directory files go to.
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	addDir := func(dir string) {
		for _, m := range mounts {
			if m.MountPath == dir || strings.HasPrefix(dir, m.MountPath+"/") {
				return
			}
		}
		v := corev1.Volume{Name: fmt.Sprintf("%s-%d", dataVolume, len(volumes))}
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
		if k.opts.Disk > 0 {
			v.EmptyDir.SizeLimit = resource.NewQuantity(k.opts.Disk, resource.BinarySI)
		}
		volumes = append(volumes, v)
		mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: dir})
	}
	if spec.DataDir != "" {
		addDir(path.Clean(spec.DataDir))
	}
	for _, f := range spec.Files {
		addDir(path.Dir(path.Clean(f.Path)))
	}
	// The root filesystem is read-only, as with Docker: sockets and pid files
	// go to memory-backed /tmp and /run (unless files went there already).
	for _, dir := range scratchDirs {
		taken := false
		for _, m := range mounts {
			taken = taken || m.MountPath == dir || strings.HasPrefix(m.MountPath, dir+"/")
		}
		if !taken {
			v := corev1.Volume{Name: fmt.Sprintf("%s-%d", dataVolume, len(volumes)), VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(scratchSize, resource.BinarySI)}}}
			volumes = append(volumes, v)
			mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: dir})
		}
	}

	var env []corev1.EnvVar
	for key := range spec.Env {
		env = append(env, corev1.EnvVar{Name: key, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key,
		}}})
	}
	// A Secret is always made (empty when the image needs no environment):
	// the server waits for it, so it starts only once the NetworkPolicy is in.
	env = append(env, corev1.EnvVar{Name: "BACKPROOF_SANDBOX", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "BACKPROOF_SANDBOX",
	}}})

	res := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	if spec.Memory > 0 {
		q := *resource.NewQuantity(spec.Memory, resource.BinarySI)
		res.Limits[corev1.ResourceMemory], res.Requests[corev1.ResourceMemory] = q, q
	}
	if spec.CPUs > 0 {
		q := *resource.NewMilliQuantity(int64(spec.CPUs*1000), resource.DecimalSI)
		res.Limits[corev1.ResourceCPU], res.Requests[corev1.ResourceCPU] = q, q
	}
	no, never := false, int64(0)
	yes := true
	sc := &corev1.SecurityContext{
		Privileged:               &no,
		AllowPrivilegeEscalation: &no,
		ReadOnlyRootFilesystem:   &yes,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: capabilities},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.opts.Namespace, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &never,
			SecurityContext:               &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Volumes:                       volumes,
			Containers: []corev1.Container{{
				Name:            serverContainer,
				Image:           spec.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            spec.Cmd,
				Env:             env,
				Ports:           []corev1.ContainerPort{{ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}},
				Resources:       res,
				SecurityContext: sc,
				VolumeMounts:    mounts,
			}},
		},
	}
	setDeadline(p, spec)
	if len(spec.Files) > 0 {
		// Files arrive on the init container's stdin as a tar archive
		// (preload); the server starts once it has unpacked them.
		p.Spec.InitContainers = []corev1.Container{{
			Name:            preloadContainer,
			Image:           spec.Image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{"tar", "-x", "-o", "-f", "-", "-C", "/"},
			Stdin:           true,
			StdinOnce:       true,
			Resources:       res,
			SecurityContext: sc,
			VolumeMounts:    mounts,
		}}
	}
	return p
}

// protect creates the sandbox's NetworkPolicy, then its Secret, both owned by
// the Pod (removed with it by the garbage collector).
func (k *Kubernetes) protect(ctx context.Context, p *corev1.Pod, spec sandbox.Spec, port int) error {
	owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: p.Name, UID: p.UID}}
	meta := metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, OwnerReferences: owner,
		Labels: map[string]string{LabelSandbox: "1", LabelName: p.Name}}
	tcp := corev1.ProtocolTCP
	dbPort := intstr.FromInt32(int32(port))
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelName: p.Name}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					PodSelector:       &metav1.LabelSelector{MatchLabels: k.opts.ClientLabels},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": k.opts.ClientNamespace}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &dbPort}},
			}},
			// No egress rule: nothing leaves the sandbox.
		},
	}
	if err := k.api.networkPolicies.create(ctx, np, &networkingv1.NetworkPolicy{}); err != nil {
		return fmt.Errorf("create network policy: %v", err)
	}
	data := map[string][]byte{"BACKPROOF_SANDBOX": []byte("1")}
	for key, v := range spec.Env {
		data[key] = []byte(v)
	}
	sec := &corev1.Secret{ObjectMeta: meta, Data: data, Type: corev1.SecretTypeOpaque}
	if err := k.api.secrets.create(ctx, sec, &corev1.Secret{}); err != nil {
		return fmt.Errorf("create secret: %v", err)
	}
	return nil
}

// Sweep removes sandbox Pods past their deadline and those whose owner was a
// process on this host that is gone (their Secrets and NetworkPolicies go
// with them). It returns how many it removed.
func (k *Kubernetes) Sweep(ctx context.Context) (int, error) {
	list := &corev1.PodList{}
	if err := k.api.pods.list(ctx, metav1.ListOptions{LabelSelector: LabelSandbox}, list); err != nil {
		return 0, fmt.Errorf("list sandboxes: %w", err)
	}
	now := time.Now()
	var removed int
	var errs []error
	for _, p := range list.Items {
		why := docker.Leftover(map[string]string{
			docker.LabelOwner:    p.Annotations[AnnotationOwner],
			docker.LabelDeadline: p.Labels[LabelDeadline],
		}, now)
		if why == "" || p.DeletionTimestamp != nil {
			continue
		}
		err := k.deletePod(ctx, p.Name, p.UID)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue // another run's sweep got there first
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", p.Name, err))
			continue
		}
		removed++
		k.log.InfoContext(ctx, "removed leftover sandbox", "pod", p.Name, "reason", why)
	}
	return removed, errors.Join(errs...)
}

func (k *Kubernetes) deletePod(ctx context.Context, name string, uid types.UID) error {
	now := int64(0)
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{GracePeriodSeconds: &now, PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}}
	return k.api.pods.delete(ctx, name, opts)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// scratchDirs are memory-backed and writable on the read-only root, of
// scratchSize each (counted in the Pod's memory).
var scratchDirs = []string{"/tmp", "/run"}

const scratchSize = 64 << 20

// digestOf is the registry digest in a container's image id
// ("docker.io/library/postgres@sha256:..."), or "" for an image imported
// into the node rather than pulled ("sha256:...").
func digestOf(imageID string) string {
	if strings.Contains(imageID, "@sha256:") {
		return strings.TrimPrefix(imageID, "docker-pullable://")
	}
	return ""
}

func containerImageID(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == serverContainer {
			return c.ImageID
		}
	}
	return ""
}

type instance struct {
	k          *Kubernetes
	name       string
	uid        types.UID
	ref        string
	imageID    string
	host       string
	port       int
	fwd        *forward // nil in the cluster
	closeOnce  sync.Once
	closeError error
}

func (i *instance) Addr() (string, int)     { return i.host, i.port }
func (i *instance) Image() (string, string) { return i.ref, i.imageID }

// ImageDigest implements sandbox.Digester.
func (i *instance) ImageDigest() string { return digestOf(i.imageID) }

func (i *instance) pods() objects { return i.k.api.pods }

func (i *instance) get(ctx context.Context) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	return p, i.pods().get(ctx, i.name, p)
}

// until watches the Pod until cond says done or returns an error.
func (i *instance) until(ctx context.Context, cond func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	for {
		p, err := i.get(ctx)
		if err != nil {
			return nil, err
		}
		if done, err := cond(p); done || err != nil {
			return p, err
		}
		w, err := i.pods().watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + i.name, ResourceVersion: p.ResourceVersion})
		if err != nil {
			return nil, err
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Error {
				break
			}
			if ev.Type == watch.Deleted {
				w.Stop()
				return nil, errors.New("the sandbox pod was deleted")
			}
			if done, err := cond(p); done || err != nil {
				w.Stop()
				return p, err
			}
		}
		w.Stop()
		if err := context.Cause(ctx); err != nil {
			return nil, err
		}
	}
}

// failed says why a Pod cannot become a running server, or "".
func failed(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		why := "the sandbox pod ended"
		if p.Status.Reason != "" {
			why += " (" + p.Status.Reason + ")"
		}
		if p.Status.Message != "" {
			why += ": " + p.Status.Message
		}
		return why
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
				return fmt.Sprintf("sandbox image %s is not present on the node and could not be pulled (%s): %s", cs.Image, w.Reason, w.Message)
			case "CreateContainerError", "RunContainerError":
				return fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
		if t := cs.State.Terminated; t != nil && (cs.Name == serverContainer || t.ExitCode != 0) {
			return fmt.Sprintf("container %s exited (%s, code %d)", cs.Name, t.Reason, t.ExitCode)
		}
	}
	return ""
}

// preload streams files into the init container's tar.
func (i *instance) preload(ctx context.Context, files []sandbox.File) error {
	_, err := i.until(ctx, func(p *corev1.Pod) (bool, error) {
		if why := failed(p); why != "" {
			return false, errors.New(why)
		}
		for _, cs := range p.Status.InitContainerStatuses {
			if cs.Name == preloadContainer && cs.State.Running != nil {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	req := i.pods().subresource(http.MethodPost, i.name, "attach", &corev1.PodAttachOptions{Container: preloadContainer, Stdin: true, Stderr: true})
	exec, err := remotecommand.NewSPDYExecutor(i.k.cfg, http.MethodPost, req.URL())
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := sandbox.WriteTar(pw, files, rootPath)
		werr <- err
		pw.CloseWithError(err)
	}()
	var stderr strings.Builder
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: pr, Stderr: &limitWriter{w: &stderr, n: 4096}})
	pr.CloseWithError(errors.New("copy ended"))
	if e := <-werr; e != nil { // a file that could not be read says more than tar
		return fmt.Errorf("copy files into the sandbox: %w", e)
	}
	if err != nil {
		return fmt.Errorf("copy files into the sandbox: %v %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (i *instance) waitRunning(ctx context.Context) (*corev1.Pod, error) {
	return i.until(ctx, func(p *corev1.Pod) (bool, error) {
		if why := failed(p); why != "" {
			return false, errors.New(why)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == serverContainer && (cs.State.Running != nil || cs.State.Terminated != nil) {
				return true, nil
			}
		}
		return false, nil
	})
}

// waitReady follows the server's output until the ready line has appeared
// count times. The stream ends when the container does.
func (i *instance) waitReady(ctx context.Context, line string, count int) error {
	rc, err := i.pods().subresource(http.MethodGet, i.name, "log", &corev1.PodLogOptions{Container: serverContainer, Follow: true}).Stream(ctx)
	if err != nil {
		return fmt.Errorf("follow the server's output: %v", err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), line) {
			if seen++; seen >= count {
				return nil
			}
		}
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if err := i.Check(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	return fmt.Errorf("the server's output ended before it was ready")
}

// Check implements sandbox.Instance.
func (i *instance) Check(ctx context.Context) error {
	p, err := i.get(ctx)
	if err != nil {
		return fmt.Errorf("%w: sandbox state: %v", sandbox.ErrUnavailable, err)
	}
	if p.Status.Reason == "Evicted" {
		return fmt.Errorf("%w: sandbox pod was evicted: %s (sandbox.kubernetes.disk bounds its data volume)", sandbox.ErrUnavailable, p.Status.Message)
	}
	if p.Status.Reason == "DeadlineExceeded" {
		return fmt.Errorf("%w: sandbox pod reached its deadline (sandbox.timeout)", sandbox.ErrUnavailable)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != serverContainer {
			continue
		}
		if t := cs.State.Terminated; t != nil {
			if t.Reason == "OOMKilled" {
				return fmt.Errorf("%w: sandbox was killed for exceeding its memory limit (sandbox.memory)", sandbox.ErrUnavailable)
			}
			return fmt.Errorf("%w: sandbox exited (%s, code %d)", sandbox.ErrUnavailable, t.Reason, t.ExitCode)
		}
	}
	if why := failed(p); why != "" {
		return fmt.Errorf("%w: %s", sandbox.ErrUnavailable, why)
	}
	return nil
}

// Logs implements sandbox.Instance: the last lines of the server's output
// (or of the preload's, when the server never started).
func (i *instance) Logs(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tail := int64(8)
	for _, c := range []string{serverContainer, preloadContainer} {
		b, err := i.pods().subresource(http.MethodGet, i.name, "log", &corev1.PodLogOptions{Container: c, TailLines: &tail}).DoRaw(ctx)
		if err != nil || len(b) == 0 {
			continue
		}
		var lines []string
		for l := range strings.Lines(string(b)) {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, " | ")
	}
	return ""
}

// Close implements sandbox.Instance. The Pod is deleted at once; its Secret
// and NetworkPolicy are deleted too (the garbage collector would).
func (i *instance) Close(ctx context.Context) error {
	i.closeOnce.Do(func() {
		if i.fwd != nil {
			i.fwd.Close()
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err := i.k.deletePod(ctx, i.name, i.uid)
		if err != nil && !apierrors.IsNotFound(err) {
			i.k.log.WarnContext(ctx, "could not remove sandbox; the next run removes it", "pod", i.name, "err", err)
			i.closeError = fmt.Errorf("remove sandbox %s: %w", i.name, err)
		}
		if err := i.k.api.secrets.delete(ctx, i.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			i.k.log.DebugContext(ctx, "could not delete the sandbox's secret; the garbage collector does", "pod", i.name, "err", err)
		}
		if err := i.k.api.networkPolicies.delete(ctx, i.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			i.k.log.DebugContext(ctx, "could not delete the sandbox's network policy; the garbage collector does", "pod", i.name, "err", err)
		}
	})
	return i.closeError
}

// rootPath names a file by its path relative to "/", where the preload
// container unpacks the archive.
func rootPath(f sandbox.File) string { return strings.TrimPrefix(path.Clean("/"+f.Path), "/") }

// limitWriter keeps the first n bytes written to it.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
