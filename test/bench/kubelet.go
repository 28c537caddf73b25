package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/testbed"
)

// kubeletResult is "ECK renewed -> the consuming Elasticsearch's pods see it", with the kubelet
// modelled as documented (sync every minute with jitter 0.5, at once on a pod update), for a
// pod the agent can mark as updated and for one it cannot (no pod object to patch).
type kubeletResult struct {
	bumped, unbumped []time.Duration
}

// kubeletDelay creates two consuming Elasticsearch resources with the realistic kubelet model,
// one link each, and times how long each new CA takes to show in their pods' files.
func (b *bed) kubeletDelay(ctx context.Context, updates int) (kubeletResult, error) {
	var res kubeletResult
	east := b.w.Clusters["east"]
	realistic := func(noPod bool) func(*pod.Options) {
		return func(o *pod.Options) { o.VolumeSyncDelay, o.Kubelet, o.NoPodObject = 0, pod.Kubelet{}, noPod }
	}
	pods := map[string]*pod.Pod{}
	for _, name := range []string{"kubelet-bumped", "kubelet-unbumped"} {
		p, err := east.ElasticsearchWith(ctx, testbed.Elasticsearch{Namespace: ns, Name: name, Version: "9.3.2"}, realistic(name == "kubelet-unbumped"))
		if err != nil {
			return res, err
		}
		pods[name] = p
		if _, err := east.Import(ctx, ns, name, name, name, "west", ns, "logs", nil); err != nil {
			return res, err
		}
	}
	if err := b.waitConnected(ctx, []string{"kubelet-bumped", "kubelet-unbumped"}); err != nil {
		return res, err
	}
	secrets := b.w.Clusters["west"].Env.Kube.CoreV1().Secrets(ns)
	orig, err := secrets.Get(ctx, caSecret, metav1GetOptions())
	if err != nil {
		return res, err
	}
	defer b.restoreCA(ctx, orig)
	for i := range updates {
		start, fp, err := b.writeCA(ctx, 1000+i)
		if err != nil {
			return res, err
		}
		seen := map[string]time.Duration{}
		for len(seen) < 2 && time.Since(start) < 150*time.Second {
			for name, p := range pods {
				if _, ok := seen[name]; !ok && mountedHas(p, wiring.CAConfigMapName(name), fp) {
					seen[name] = time.Since(start)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(seen) < 2 {
			return res, fmt.Errorf("kubelet update %d: not seen by every pod within 150s (%v)", i, seen)
		}
		res.bumped, res.unbumped = append(res.bumped, seen["kubelet-bumped"]), append(res.unbumped, seen["kubelet-unbumped"])
		fmt.Printf("bench: ECK renewed -> pods see it (kubelet as documented), update %d: with the pod bump %s, without %s\n",
			i, seen["kubelet-bumped"].Round(time.Millisecond), seen["kubelet-unbumped"].Round(time.Millisecond))
	}
	return res, nil
}

func mountedHas(p *pod.Pod, cm, fp string) bool {
	data, ok := p.Mounted("configMap", cm)
	if !ok {
		return false
	}
	certs, err := pemutil.ParseCertificates(data["ca.crt"], pemutil.Limits{})
	if err != nil {
		return false
	}
	for _, c := range certs {
		if pemutil.Fingerprint(c) == fp {
			return true
		}
	}
	return false
}
