package wiring

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
)

var esGR = schema.GroupResource{Group: eck.ElasticsearchGVR.Group, Resource: eck.ElasticsearchGVR.Resource}

// setLabel is a Change: it sets one label, and reports nothing when the label is there.
func setLabel(k, v string) Change {
	return func(es *unstructured.Unstructured) ([]string, error) {
		if es.GetLabels()[k] == v {
			return nil, nil
		}
		l := es.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[k] = v
		es.SetLabels(l)
		return []string{"label " + k}, nil
	}
}

func TestEditorEdit(t *testing.T) {
	conflict := apierrors.NewConflict(esGR, "ccs", errors.New("the object has been modified"))
	tests := []struct {
		name string
		// stored is created in the fake API before the edit (nil: the resource does not exist).
		stored *unstructured.Unstructured
		// cached is what the caller passes (its informer's copy).
		cached  *unstructured.Unstructured
		change  Change
		updates []error // what each Update answers before the fake stores it (nil: store it)
		// want
		wantErr   func(error) bool
		wantVerbs string // the API calls, in order
		wantLabel string // label "ecklink" of the stored object after the edit
		wantOther string // label "other" of the stored object (a concurrent writer's)
		wantDesc  int    // descriptions returned
	}{
		{
			name: "a change is one update", stored: labelled(nil), cached: labelled(nil), change: setLabel("ecklink", "yes"),
			wantVerbs: "update", wantLabel: "yes", wantDesc: 1,
		},
		{
			name: "a change that changes nothing costs no call", stored: labelled(map[string]string{"ecklink": "yes"}),
			cached: labelled(map[string]string{"ecklink": "yes"}), change: setLabel("ecklink", "yes"),
			wantVerbs: "", wantLabel: "yes",
		},
		{
			name:   "a conflict edits the current object again",
			stored: labelled(map[string]string{"other": "theirs"}), cached: labelled(nil), change: setLabel("ecklink", "yes"),
			updates:   []error{conflict},
			wantVerbs: "update get update", wantLabel: "yes", wantOther: "theirs", wantDesc: 1,
		},
		{
			name:   "after a conflict the current object may need nothing",
			stored: labelled(map[string]string{"ecklink": "yes"}), cached: labelled(nil), change: setLabel("ecklink", "yes"),
			updates:   []error{conflict},
			wantVerbs: "update get", wantLabel: "yes",
		},
		{
			name:   "conflicts that do not stop give up with the conflict",
			stored: labelled(nil), cached: labelled(nil), change: setLabel("ecklink", "yes"),
			updates:   []error{conflict, conflict, conflict, conflict, conflict},
			wantErr:   apierrors.IsConflict,
			wantVerbs: "update get update get update get update get update",
		},
		{
			name: "not found is not retried", stored: nil, cached: labelled(nil), change: setLabel("ecklink", "yes"),
			wantErr: apierrors.IsNotFound, wantVerbs: "update",
		},
		{
			name:   "deleted after a conflict",
			stored: nil, cached: labelled(nil), change: setLabel("ecklink", "yes"),
			updates: []error{conflict},
			wantErr: apierrors.IsNotFound, wantVerbs: "update get",
		},
		{
			name: "the change's own error is returned as it is, with no call", stored: labelled(nil), cached: labelled(nil),
			change:    func(*unstructured.Unstructured) ([]string, error) { return nil, errBadSpec },
			wantErr:   func(err error) bool { return errors.Is(err, errBadSpec) && err.Error() == errBadSpec.Error() },
			wantVerbs: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var objs []*unstructured.Unstructured
			if tt.stored != nil {
				objs = append(objs, tt.stored)
			}
			dyn := fakekube.Dynamic(t, nil, objs...)
			answers := tt.updates
			dyn.PrependReactor("update", "elasticsearches", func(k8stesting.Action) (bool, runtime.Object, error) {
				if len(answers) == 0 {
					return false, nil, nil
				}
				err := answers[0]
				answers = answers[1:]
				return true, nil, err
			})
			dyn.ClearActions()

			got, desc, err := NewEditor(dyn, nil).Edit(ctx, tt.cached, "label", tt.change)

			var verbs []string
			for _, a := range dyn.Actions() {
				verbs = append(verbs, a.GetVerb())
			}
			if v := strings.Join(verbs, " "); v != tt.wantVerbs {
				t.Errorf("calls = %q, want %q", v, tt.wantVerbs)
			}
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				if got != tt.cached {
					t.Error("a failed edit did not return the caller's object")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(desc) != tt.wantDesc {
				t.Errorf("descriptions = %v, want %d", desc, tt.wantDesc)
			}
			stored, err := dyn.Resource(eck.ElasticsearchGVR).Namespace("apps").Get(ctx, "ccs", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if l := stored.GetLabels(); l["ecklink"] != tt.wantLabel || l["other"] != tt.wantOther {
				t.Errorf("stored labels = %v", l)
			}
			if got.GetLabels()["ecklink"] != tt.wantLabel {
				t.Errorf("returned labels = %v, want the stored object", got.GetLabels())
			}
			if tt.cached.GetLabels()["ecklink"] != "" && tt.cached.GetLabels()["ecklink"] != tt.wantLabel {
				t.Error("Edit changed the caller's object")
			}
		})
	}
}

func TestEditorErrorNamesTheEditAndTheResource(t *testing.T) {
	dyn := fakekube.Dynamic(t, nil)
	_, _, err := NewEditor(dyn, nil).Edit(context.Background(), labelled(nil), "wire the agent's user into", setLabel("a", "b"))
	if err == nil || !strings.HasPrefix(err.Error(), "failed to wire the agent's user into Elasticsearch apps/ccs: ") {
		t.Errorf("err = %v", err)
	}
}

var errBadSpec = errors.New("invalid Elasticsearch ccs: spec.nodeSets must list at least one node set")

func labelled(labels map[string]string) *unstructured.Unstructured {
	es := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
		"metadata": map[string]any{"name": "ccs", "namespace": "apps"},
		"spec":     map[string]any{"nodeSets": []any{map[string]any{"name": "default", "count": int64(1)}}},
	}}
	if labels != nil {
		es.SetLabels(labels)
	}
	return es
}
