// Command baseline is the benchmark's reference: the least a program can do to propagate a CA,
// a client-go informer on the Secret in one apiserver that writes ConfigMaps into another, one
// after the other: <configmap>-0 ... <configmap>-<count-1>, as many as the agent writes (one per
// consuming Elasticsearch).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	from := flag.String("from", "", "kubeconfig of the source apiserver")
	to := flag.String("to", "", "kubeconfig of the target apiserver")
	ns := flag.String("namespace", "", "namespace of the Secret and the ConfigMap")
	secret := flag.String("secret", "", "Secret to watch (key ca.crt)")
	cm := flag.String("configmap", "", "prefix of the ConfigMaps to write (key ca.crt)")
	count := flag.Int("count", 1, "ConfigMaps to write on each change")
	flag.Parse()
	if err := run(*from, *to, *ns, *secret, *cm, *count); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func client(path string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return kubernetes.NewForConfig(cfg)
}

func run(from, to, ns, secret, prefix string, count int) error {
	src, err := client(from)
	if err != nil {
		return err
	}
	dst, err := client(to)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	factory := informers.NewSharedInformerFactoryWithOptions(src, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", secret).String()
		}))
	write := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		for i := range count {
			c := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: ns}, Data: map[string]string{"ca.crt": string(s.Data["ca.crt"])}}
			_, err := dst.CoreV1().ConfigMaps(ns).Update(ctx, c, metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) {
				_, err = dst.CoreV1().ConfigMaps(ns).Create(ctx, c, metav1.CreateOptions{})
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "baseline: write:", err)
			}
		}
	}
	if _, err := factory.Core().V1().Secrets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: write, UpdateFunc: func(_, n any) { write(n) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	<-ctx.Done()
	return nil
}
