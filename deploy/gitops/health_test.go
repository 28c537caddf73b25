package gitops_test

import (
	"os"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// healthScripts reads argocd-health.yaml.
func healthScripts(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("argocd-health.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data
}

// toLua converts a decoded JSON value into Lua values, as Argo CD hands objects to scripts.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	}
	return lua.LNil
}

// run evaluates a health script on obj (YAML) and returns status and message.
func run(t *testing.T, script, obj string) (string, string) {
	t.Helper()
	var o map[string]any
	if err := yaml.Unmarshal([]byte(obj), &o); err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, o))
	if err := L.DoString("local function health() " + script + " end\nresult = health()"); err != nil {
		t.Fatalf("script fails: %v", err)
	}
	res, ok := L.GetGlobal("result").(*lua.LTable)
	if !ok {
		t.Fatal("script returned no table")
	}
	return res.RawGetString("status").String(), res.RawGetString("message").String()
}

func TestArgoCDHealth(t *testing.T) {
	scripts := healthScripts(t)
	tests := []struct {
		name, obj, status, message string
	}{
		{"no status yet", `metadata: {generation: 1}`, "Progressing", "waiting for the ecklink agent"},
		{"ready", `
metadata: {generation: 2}
status: {conditions: [{type: Connected, status: "True"}, {type: Ready, status: "True", reason: Ready, message: "", observedGeneration: 2}]}`,
			"Healthy", "Ready: "},
		{"not ready", `
metadata: {generation: 1}
status: {conditions: [{type: Ready, status: "False", reason: PeerDisconnected, message: the stream to west is down, observedGeneration: 1}]}`,
			"Degraded", "PeerDisconnected: the stream to west is down"},
		{"unknown", `
metadata: {generation: 1}
status: {conditions: [{type: Ready, status: Unknown, reason: Reconciling, message: Connected is not evaluated yet, observedGeneration: 1}]}`,
			"Progressing", "Reconciling: Connected is not evaluated yet"},
		{"ready for an older generation", `
metadata: {generation: 3}
status: {conditions: [{type: Ready, status: "True", reason: Ready, observedGeneration: 2}]}`,
			"Progressing", "waiting for the ecklink agent"},
	}
	for _, kind := range []string{"Peer", "ClusterExport", "RemoteCluster"} {
		script, ok := scripts["resource.customizations.health.ecklink.io_"+kind]
		if !ok {
			t.Fatalf("no health check for %s", kind)
		}
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				status, message := run(t, script, tt.obj)
				if status != tt.status || message != tt.message {
					t.Errorf("got %s %q, want %s %q", status, message, tt.status, tt.message)
				}
			})
		}
	}
}

// TestREADMEHealthCheck keeps the README's copy of the script the one tested here.
func TestREADMEHealthCheck(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := healthScripts(t)["resource.customizations.health.ecklink.io_Peer"]
	var indented strings.Builder
	for _, l := range strings.Split(strings.TrimRight(script, "\n"), "\n") {
		indented.WriteString("    " + l + "\n")
	}
	if !strings.Contains(string(readme), indented.String()) {
		t.Errorf("README's Argo CD health check differs from deploy/gitops/argocd-health.yaml:\n%s", indented.String())
	}
}
