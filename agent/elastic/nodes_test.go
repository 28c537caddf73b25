package elastic

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

func TestInfo(t *testing.T) {
	for _, version := range []string{"8.14.3", "8.19.2", "9.3.2"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t, version)
			info, err := e.c.Info(context.Background())
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			if info.Version != version || info.ClusterName != "c" || info.NodeName != "n" || info.ClusterUUID != e.node.ClusterUUID() {
				t.Errorf("Info = %+v", info)
			}
		})
	}
}

func TestNodeStartTimes(t *testing.T) {
	e := newEnv(t, "9.3.2")
	ctx := context.Background()
	start := time.UnixMilli(1700000000123)
	e.node.SetStartTime(start)
	got, err := e.c.NodeStartTimes(ctx)
	if err != nil {
		t.Fatalf("NodeStartTimes: %v", err)
	}
	if len(got) != 1 || !got[e.node.NodeID()].Equal(start) {
		t.Fatalf("NodeStartTimes = %v, want %s: %v", got, e.node.NodeID(), start)
	}
	restarted := start.Add(time.Hour)
	e.node.SetStartTime(restarted)
	got, err = e.c.NodeStartTimes(ctx)
	if err != nil {
		t.Fatalf("NodeStartTimes: %v", err)
	}
	if !got[e.node.NodeID()].Equal(restarted) {
		t.Errorf("after restart NodeStartTimes = %v, want %v", got, restarted)
	}
}

func TestReloadSecureSettings(t *testing.T) {
	tests := []struct {
		name     string
		reload   func(string) error
		wantErr  string
		wantType string
	}{
		{name: "success"},
		{name: "no hook"},
		{
			name: "reload exception",
			reload: func(string) error {
				return &esim.Error{Type: "security_exception", Reason: "Provided keystore password was incorrect", Status: 403}
			},
			wantErr:  "security_exception: Provided keystore password was incorrect",
			wantType: "security_exception",
		},
		{
			name:     "plain error",
			reload:   func(string) error { return errors.New("keystore is corrupt") },
			wantErr:  "keystore is corrupt",
			wantType: "exception",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "9.3.2")
			if tt.reload != nil || tt.name == "success" {
				f := tt.reload
				if f == nil {
					f = func(string) error { return nil }
				}
				e.node.SetReloadFunc(f)
			}
			nodes, err := e.c.ReloadSecureSettings(context.Background())
			if len(nodes) != 1 || nodes[0].ID != e.node.NodeID() || nodes[0].Name != "n" {
				t.Fatalf("nodes = %+v", nodes)
			}
			if tt.wantErr == "" {
				if err != nil || nodes[0].Err != nil {
					t.Fatalf("err = %v, node err = %v", err, nodes[0].Err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "node n") {
				t.Fatalf("err = %v, want it to name node n and contain %q", err, tt.wantErr)
			}
			if ErrorType(err) != tt.wantType || nodes[0].Err == nil || nodes[0].Err.Type != tt.wantType {
				t.Errorf("type = %q / %+v, want %q", ErrorType(err), nodes[0].Err, tt.wantType)
			}
			if Retryable(err) {
				t.Errorf("Retryable(%v) = true", err)
			}
		})
	}
}

func TestReloadSecureSettingsNodeFailures(t *testing.T) {
	c := fakeES(t, map[string]string{"/_nodes/reload_secure_settings": `{"_nodes":{"total":2,"successful":1,"failed":1,
		"failures":[{"type":"failed_node_exception","reason":"Failed node [x]"}]},"cluster_name":"c","nodes":{"a":{"name":"node-a"}}}`})
	nodes, err := c.ReloadSecureSettings(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Failed node [x]") || ErrorType(err) != "failed_node_exception" {
		t.Fatalf("err = %v", err)
	}
	if len(nodes) != 1 || nodes[0].Err != nil {
		t.Errorf("nodes = %+v", nodes)
	}
}

func TestNodeStartTimesMissing(t *testing.T) {
	c := fakeES(t, map[string]string{"/_nodes/jvm": `{"nodes":{"a":{"name":"x"}}}`})
	if _, err := c.NodeStartTimes(context.Background()); err == nil || !strings.Contains(err.Error(), "node a") {
		t.Fatalf("err = %v", err)
	}
}
