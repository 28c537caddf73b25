package fakekube

import (
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// Reactors is a fake client that takes reactors: *fake.Clientset and *dynamicfake.FakeDynamicClient.
type Reactors interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
}

// FailWhile makes every verb on resource of c fail with err while the switch it returns is on;
// the switch starts on.
func FailWhile(c Reactors, verb, resource string, err error) *atomic.Bool {
	var fail atomic.Bool
	fail.Store(true)
	c.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail.Load() {
			return true, nil, err
		}
		return false, nil, nil
	})
	return &fail
}
