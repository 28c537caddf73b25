package pairing

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestJoinerHandle(t *testing.T) {
	ctx := context.Background()
	east, west := newEnv(t, "east"), newEnv(t, "west")
	east.serve(t, time.Now)
	j, err := NewJoiner(JoinerConfig{Namespace: ns, Kube: west.kube, CRDs: west.crds, Self: west.id, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	request := func(t *testing.T, name string, tok *Token) {
		t.Helper()
		enc, err := tok.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := west.kube.CoreV1().Secrets(ns).Create(ctx, JoinRequest(ns, name, enc), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := j.Handle(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	outcome := func(t *testing.T, name string) (string, string) {
		t.Helper()
		s, err := west.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Data[KeyJoinToken]; ok {
			t.Fatal("the token stayed in the join request")
		}
		return s.Annotations[AnnotationJoinState], s.Annotations[AnnotationJoinMessage]
	}

	t.Run("expired token is not redeemed", func(t *testing.T) {
		before := east.calls()
		request(t, "ecklink-join-expired", east.token(t, -time.Minute))
		state, msg := outcome(t, "ecklink-join-expired")
		if state != JoinFailed || !strings.Contains(msg, "expired at") {
			t.Fatalf("state %s: %s", state, msg)
		}
		if east.calls() != before {
			t.Fatal("an expired token was sent to the acceptor")
		}
	})
	t.Run("pairs", func(t *testing.T) {
		request(t, "ecklink-join-ok", east.token(t, time.Minute))
		state, msg := outcome(t, "ecklink-join-ok")
		if state != JoinPaired || !strings.Contains(msg, "paired with environment east") {
			t.Fatalf("state %s: %s", state, msg)
		}
		p, err := west.crds.Peers().Get(ctx, ns, "east")
		if err != nil {
			t.Fatal(err)
		}
		if !p.Spec.Dial || p.Spec.Endpoints[0] != east.addr || p.Spec.CABundle != string(east.id.Bundle()) {
			t.Fatalf("Peer east in west = %+v", p.Spec)
		}
		if j.InProgress() {
			t.Fatal("still in progress")
		}
	})
	t.Run("handled requests are left alone", func(t *testing.T) {
		before := east.calls()
		if err := j.Handle(ctx, "ecklink-join-ok"); err != nil {
			t.Fatal(err)
		}
		if east.calls() != before {
			t.Fatal("a handled request was joined again")
		}
	})
	t.Run("already paired", func(t *testing.T) {
		request(t, "ecklink-join-again", east.token(t, time.Minute))
		state, msg := outcome(t, "ecklink-join-again")
		if state != JoinFailed || !strings.Contains(msg, `environment "east" is already paired here`) {
			t.Fatalf("state %s: %s", state, msg)
		}
	})
}
