package wiring

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Each change that edits the Elasticsearch resource records what it added in an annotation of
// its own (JSON), so that its removal takes out exactly that and never the user's entries.

// readAnnotation decodes the record in annotation key of es into rec; without the annotation,
// rec stays as it is.
func readAnnotation(es *unstructured.Unstructured, key string, rec any) error {
	raw := es.GetAnnotations()[key]
	if raw == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw), rec); err != nil {
		return fmt.Errorf("invalid annotation %s on Elasticsearch %s: %w", key, es.GetName(), err)
	}
	return nil
}

// writeAnnotation records rec in annotation key of es, or removes the annotation when empty (what
// names the record in an error). A resource left without annotations has none at all (nil), as
// before it was wired.
func writeAnnotation(es *unstructured.Unstructured, key string, rec any, empty bool, what string) error {
	ann := es.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if empty {
		delete(ann, key)
	} else {
		data, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("failed to encode %s: %w", what, err)
		}
		ann[key] = string(data)
	}
	if len(ann) == 0 {
		ann = nil
	}
	es.SetAnnotations(ann)
	return nil
}
