package importer

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/eck"
)

func TestMarkPodsBumpsOnlyThatElasticsearchsPods(t *testing.T) {
	pod := func(name, es string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, Labels: map[string]string{eck.ClusterNameLabel: es},
			Annotations: map[string]string{"user": "kept"}}}
	}
	kube := fake.NewClientset(pod("ccs-es-default-0", "ccs"), pod("ccs-es-default-1", "ccs"), pod("other-es-default-0", "other"))
	im := testImporter()
	im.cfg.Kube, im.cfg.Pods = kube, kube
	if err := im.markPodsNow(context.Background(), types.NamespacedName{Namespace: "apps", Name: "ccs"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"ccs-es-default-0": true, "ccs-es-default-1": true, "other-es-default-0": false} {
		p, err := kube.CoreV1().Pods("apps").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, bumped := p.Annotations[AnnotationUpdatedAt]; bumped != want || p.Annotations["user"] != "kept" {
			t.Fatalf("pod %s annotations %v: bumped want %v, user's annotation kept", name, p.Annotations, want)
		}
	}
}
