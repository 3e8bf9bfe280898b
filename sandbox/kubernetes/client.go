package kubernetes

import (
	"context"
	"errors"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// client is the part of the API the driver uses: Pods, Secrets and
// NetworkPolicies in one namespace. Its scheme knows core/v1 and
// networking/v1 only: client-go's Clientset registers every API group at
// init, some 9 MiB resident and 37 MB of binary in every backproof process.
type client struct {
	pods, secrets, networkPolicies objects
}

// objects are a namespace's objects of one kind, requested as client-go's
// typed clients do.
type objects struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec // options to query parameters
	ns     string
	name   string // "pods"
}

func newClient(cfg *rest.Config, namespace string) (*client, error) {
	s := runtime.NewScheme()
	// Each group's AddToScheme registers meta/v1's options and Status in it.
	if err := errors.Join(corev1.AddToScheme(s), networkingv1.AddToScheme(s)); err != nil {
		return nil, err
	}
	codecs := serializer.NewCodecFactory(s).WithoutConversion() // with the stream decoders watches need

	// One http.Client for both groups, as the Clientset shares one.
	base := *cfg
	if base.UserAgent == "" {
		base.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(&base)
	if err != nil {
		return nil, err
	}
	restClient := func(gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		c := base
		c.GroupVersion, c.APIPath, c.NegotiatedSerializer = &gv, apiPath, codecs
		return rest.RESTClientForConfigAndClient(&c, hc)
	}
	core, err := restClient(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, err
	}
	networking, err := restClient(networkingv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, err
	}
	params := runtime.NewParameterCodec(s)
	return &client{
		pods:            objects{core, params, namespace, "pods"},
		secrets:         objects{core, params, namespace, "secrets"},
		networkPolicies: objects{networking, params, namespace, "networkpolicies"},
	}, nil
}

// request starts a request on the objects. They go as protobuf, as typed
// clients send built-in kinds.
func (o objects) request(verb string) *rest.Request {
	return o.rc.Verb(verb).UseProtobufAsDefault().Namespace(o.ns).Resource(o.name)
}

// create creates obj and decodes the server's copy into out.
func (o objects) create(ctx context.Context, obj, out runtime.Object) error {
	return o.request(http.MethodPost).Body(obj).Do(ctx).Into(out)
}

func (o objects) get(ctx context.Context, name string, out runtime.Object) error {
	return o.request(http.MethodGet).Name(name).Do(ctx).Into(out)
}

func (o objects) list(ctx context.Context, opts metav1.ListOptions, out runtime.Object) error {
	return o.request(http.MethodGet).VersionedParams(&opts, o.params).Do(ctx).Into(out)
}

func (o objects) watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return o.request(http.MethodGet).VersionedParams(&opts, o.params).Watch(ctx)
}

func (o objects) delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return o.request(http.MethodDelete).Name(name).Body(&opts).Do(ctx).Error()
}

// subresource is a request to an object's subresource ("log", "attach")
// with opts (if not nil) as its parameters, in the server's content type.
func (o objects) subresource(verb, name, sub string, opts runtime.Object) *rest.Request {
	req := o.rc.Verb(verb).Namespace(o.ns).Resource(o.name).Name(name).SubResource(sub)
	if opts != nil {
		req = req.VersionedParams(opts, o.params)
	}
	return req
}
