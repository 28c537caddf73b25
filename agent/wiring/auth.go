package wiring

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AnnotationAuth records which spec.auth entries managed mode added (JSON {"fileRealm":bool,
// "roles":bool}), so removal takes only those.
const AnnotationAuth = "ecklink.io/wiring-auth"

// Auth names the Secrets that give the agent its own Elasticsearch user through ECK:
// spec.auth.fileRealm (a basic-auth Secret: username, password, roles; ECK hashes the password)
// and spec.auth.roles (roles.yml). ECK aggregates them into <es>-es-xpack-file-realm, which
// Elasticsearch's file realm reloads from disk: adding or changing them restarts nothing.
type Auth struct {
	FileRealm string
	Roles     string
}

type authRecord struct {
	FileRealm bool `json:"fileRealm,omitempty"`
	Roles     bool `json:"roles,omitempty"`
}

// authEntry is one spec.auth list the agent's Secret goes into, with the record of whether the
// agent added it.
type authEntry struct {
	field, secret string
	added         *bool
}

// entries are a's spec.auth entries, fileRealm then roles, recorded in rec.
func (a Auth) entries(rec *authRecord) []authEntry {
	return []authEntry{{"fileRealm", a.FileRealm, &rec.FileRealm}, {"roles", a.Roles, &rec.Roles}}
}

// ApplyAuth adds a's entries to spec.auth.fileRealm and spec.auth.roles of es (in place) when
// they are missing, and returns a description of each change.
func ApplyAuth(es *unstructured.Unstructured, a Auth) ([]string, error) {
	rec, err := readAuthRecord(es)
	if err != nil {
		return nil, err
	}
	var changes []string
	for _, e := range a.entries(&rec) {
		list, _, err := unstructured.NestedSlice(es.Object, "spec", "auth", e.field)
		if err != nil {
			return nil, fmt.Errorf("invalid Elasticsearch %s: spec.auth.%s must be a list: %w", es.GetName(), e.field, err)
		}
		if hasSecretName(list, e.secret) {
			continue
		}
		list = append(list, map[string]any{"secretName": e.secret})
		if err := unstructured.SetNestedSlice(es.Object, list, "spec", "auth", e.field); err != nil {
			return nil, fmt.Errorf("failed to set spec.auth.%s: %w", e.field, err)
		}
		*e.added = true
		changes = append(changes, "add spec.auth."+e.field+" entry "+e.secret)
	}
	if len(changes) == 0 {
		return nil, nil
	}
	return changes, writeAuthRecord(es, rec)
}

// MissingAuth describes what ApplyAuth would still change: empty when es names both Secrets (by
// the agent or by the user committing the snippet).
func MissingAuth(es *unstructured.Unstructured, a Auth) []string {
	changes, _ := ApplyAuth(es.DeepCopy(), a)
	return changes
}

// RemoveAuth takes out the spec.auth entries ApplyAuth recorded, and returns a description of
// each change. Entries the user made stay.
func RemoveAuth(es *unstructured.Unstructured, a Auth) ([]string, error) {
	rec, err := readAuthRecord(es)
	if err != nil {
		return nil, err
	}
	var changes []string
	for _, e := range a.entries(&rec) {
		if !*e.added {
			continue
		}
		list, _, _ := unstructured.NestedSlice(es.Object, "spec", "auth", e.field)
		kept := slices.DeleteFunc(slices.Clone(list), func(item any) bool {
			m, ok := item.(map[string]any)
			return ok && m["secretName"] == e.secret
		})
		if len(kept) == len(list) {
			continue
		}
		if len(kept) == 0 {
			unstructured.RemoveNestedField(es.Object, "spec", "auth", e.field)
		} else if err := unstructured.SetNestedSlice(es.Object, kept, "spec", "auth", e.field); err != nil {
			return nil, fmt.Errorf("failed to set spec.auth.%s: %w", e.field, err)
		}
		changes = append(changes, "remove spec.auth."+e.field+" entry "+e.secret)
	}
	if auth, ok, _ := unstructured.NestedMap(es.Object, "spec", "auth"); ok && len(auth) == 0 {
		unstructured.RemoveNestedField(es.Object, "spec", "auth")
	}
	if err := writeAuthRecord(es, authRecord{}); err != nil {
		return nil, err
	}
	return changes, nil
}

// RecordedAuth reports whether managed mode added spec.auth entries to es.
func RecordedAuth(es *unstructured.Unstructured) bool {
	return es.GetAnnotations()[AnnotationAuth] != ""
}

// hasSecretName reports whether list (spec.secureSettings, spec.auth.fileRealm or
// spec.auth.roles) has an entry naming secret.
func hasSecretName(list []any, secret string) bool {
	for _, item := range list {
		if m, ok := item.(map[string]any); ok && m["secretName"] == secret {
			return true
		}
	}
	return false
}

func readAuthRecord(es *unstructured.Unstructured) (authRecord, error) {
	var rec authRecord
	err := readAnnotation(es, AnnotationAuth, &rec)
	return rec, err
}

func writeAuthRecord(es *unstructured.Unstructured, rec authRecord) error {
	return writeAnnotation(es, AnnotationAuth, rec, rec == (authRecord{}), "auth wiring record")
}
