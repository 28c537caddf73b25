package pod

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// esObject is an Elasticsearch resource of one node set "default".
func esObject(name, version string, fileBased bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"spec":     map[string]any{"version": version, "nodeSets": []any{map[string]any{"name": "default", "count": int64(1)}}},
	}}
	if fileBased {
		u.SetAnnotations(map[string]string{FileBasedSecureSettingsAnnotation: "true"})
	}
	return u
}

// settingsJSON is settings.json as ECK 3.5 writes it (filesettings.NewEmptySettings, then
// cluster_secrets from BuildSecureSettingsData).
func settingsJSON(version int64, secrets map[string]string) []byte {
	var parts []string
	for k, v := range secrets {
		parts = append(parts, fmt.Sprintf("%q:%q", k, v))
	}
	return []byte(fmt.Sprintf(`{"metadata":{"version":"%d","compatibility":"8.6.1"},"state":{"cluster_settings":{},"snapshot_repositories":{},`+
		`"slm":{},"role_mappings":{},"autoscaling":{},"ilm":{},"ingest_pipelines":{},"index_templates":{"component_templates":{},"composable_index_templates":{}},`+
		`"cluster_secrets":{"string_secrets":{%s}}}}`, version, strings.Join(parts, ",")))
}

// TestFileBasedSecureSettings: with the annotation on ES 9.5, the keystore follows the
// file-settings Secret as the kubelet shows it, in place (no restart) on each new version;
// _cluster/state reports the applied version, and a file ES cannot parse as an error while the
// applied secrets stay. Below 9.5 ECK ignores the annotation: a keystore change restarts.
func TestFileBasedSecureSettings(t *testing.T) {
	tp := newTestPod(t, "ccs", newTestCA(t, "ccs", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), nil, nil).withNode(t, "9.5.0")
	es := esObject("ccs", "9.5.0", true)
	tp.esObj = &esState{obj: es}
	live, err := buildSpec(es)
	if err != nil {
		t.Fatal(err)
	}
	tp.running = live
	tp.opts.RestartDelay = time.Millisecond
	key := "cluster.remote.logs.credentials"
	state := func() (any, any) {
		r := tp.rest(t, "GET", "/_cluster/state/metadata?filter_path=metadata.reserved_state.file_settings", "")
		fs, _ := r["metadata"].(map[string]any)["reserved_state"].(map[string]any)["file_settings"].(map[string]any)
		return fs["version"], fs["errors"]
	}
	write := func(raw []byte) {
		tp.view.record(objectKey("secret", "ccs-es-file-settings"), time.Now(), map[string][]byte{"settings.json": raw}, false)
	}
	step := func() {
		now := time.Now()
		tp.reconcile(now)
		tp.reconcile(now.Add(time.Second)) // a restart would be due by now
	}

	write(settingsJSON(100, map[string]string{key: "key-a"}))
	step()
	if v, ok := tp.credentials("logs"); ok {
		t.Fatalf("credentials %q before the kubelet synced the Secret", v)
	}
	tp.kubelet.syncNow(time.Now().Add(time.Millisecond))
	step()
	if v, _ := tp.credentials("logs"); v != "key-a" {
		t.Fatalf("credentials %q after the sync, want key-a", v)
	}
	if v, errs := state(); v != float64(100) || errs != nil {
		t.Errorf("file_settings version %v errors %v, want 100 and none", v, errs)
	}

	write(settingsJSON(200, map[string]string{key: "key-b"}))
	tp.kubelet.syncNow(time.Now().Add(time.Millisecond))
	step()
	if v, _ := tp.credentials("logs"); v != "key-b" {
		t.Errorf("credentials %q after version 200, want key-b", v)
	}
	if v, _ := state(); v != float64(200) {
		t.Errorf("file_settings version %v, want 200", v)
	}

	write([]byte(`{"metadata":{"version":"300"},"state":{"cluster_secrets":{"string_secrets":{"x":1}}}}`))
	tp.kubelet.syncNow(time.Now().Add(time.Millisecond))
	step()
	if v, _ := tp.credentials("logs"); v != "key-b" {
		t.Errorf("credentials %q after a refused file, want key-b", v)
	}
	if v, errs := state(); v != float64(200) || errs == nil {
		t.Errorf("refused file: version %v errors %v, want 200 and an error", v, errs)
	}

	write(settingsJSON(150, map[string]string{key: "key-old"}))
	tp.kubelet.syncNow(time.Now().Add(time.Millisecond))
	step()
	if v, _ := tp.credentials("logs"); v != "key-b" {
		t.Errorf("credentials %q after an older version, want key-b", v)
	}
	if tp.Restarts() != 0 || tp.SecureSettingsReloads() != 2 {
		t.Errorf("restarts %d reloads %d, want 0 and 2", tp.Restarts(), tp.SecureSettingsReloads())
	}

	// 9.4 with the annotation: the keystore comes from <es>-es-secure-settings and a change restarts.
	old := newTestPod(t, "old", newTestCA(t, "old", nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), nil, nil).withNode(t, "9.4.0")
	oes := esObject("old", "9.4.0", true)
	old.esObj = &esState{obj: oes}
	if old.running, err = buildSpec(oes); err != nil {
		t.Fatal(err)
	}
	old.opts.RestartDelay = time.Millisecond
	old.opts.Kube = nil
	old.view.record(objectKey("secret", "old-es-file-settings"), time.Now(), map[string][]byte{"settings.json": settingsJSON(1, map[string]string{key: "ignored"})}, false)
	old.kubelet.syncNow(time.Now().Add(time.Millisecond))
	old.secureData = map[string][]byte{key: []byte("key-c")}
	old.reconcile(time.Now())
	if v, _ := old.credentials("logs"); v != "" || old.pendingAt.IsZero() {
		t.Errorf("9.4: credentials %q pending %v, want none yet and a restart scheduled", v, old.pendingAt)
	}
}
