package elastic

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/kubernetes/fake"
)

func TestSecretRedaction(t *testing.T) {
	k := CreatedKey{ID: "id", Name: "n", Encoded: Secret("c2VjcmV0")}
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k.Encoded, k.Encoded, k.Encoded),
		fmt.Sprintf("%#v", k.Encoded), mustMarshal(k),
	} {
		if strings.Contains(s, "c2VjcmV0") || strings.Contains(s, "736563726574") {
			t.Errorf("secret leaked: %s", s)
		}
	}
	if k.Encoded.Value() != "c2VjcmV0" {
		t.Error("Value() does not return the secret")
	}
}

// TestNoSecretsInLogsOrErrors drives every operation, successes and
// failures, through the production Resolver path with trace logging in both
// formats, and checks that no password or key material shows up.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	for _, jsonFormat := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonFormat), func(t *testing.T) {
			log, logs := newTestLogger(jsonFormat)
			secrets, errs := runEverything(t, log)
			if !strings.Contains(logs.String(), "elasticsearch request") || !strings.Contains(logs.String(), "created cross-cluster API key") {
				t.Fatalf("expected request and operation logs, got:\n%s", logs)
			}
			for _, s := range secrets {
				if strings.Contains(logs.String(), s) {
					t.Errorf("log output contains secret %q", s)
				}
				for _, err := range errs {
					if strings.Contains(err.Error(), s) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), s) {
						t.Errorf("error %q contains secret %q", err, s)
					}
				}
			}
			if len(errs) < 6 {
				t.Errorf("only %d errors were produced", len(errs))
			}
		})
	}
}

// runEverything returns the secrets it handled and every error it saw.
func runEverything(t *testing.T, log hclog.Logger) (secrets []string, errs []error) {
	t.Helper()
	pki := newPKI(t, ServerName(logsTarget))
	node := newESIMNode(t, testPassword)
	node.SetReloadFunc(func(string) error { return fmt.Errorf("keystore broken") })
	srv := serveTLS(t, node.Handler(), pki)
	_, certs := eckSecrets(testPassword, pki.caPEM)
	r, err := NewResolver(ResolverConfig{Kube: fake.NewClientset(agentUser(testPassword), certs), Endpoints: map[Target]string{logsTarget: srv.URL}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := r.Client(ctx, logsTarget)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, testPassword, base64.StdEncoding.EncodeToString([]byte("ecklink-agent:"+testPassword)))
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err = c.Info(ctx)
	note(err)
	k, err := c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "ecklink-p-a", Access: searchLogs, Expiration: time.Hour, Metadata: map[string]any{"managed-by": "ecklink"}})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("created key for the test", "key", k, "encoded", k.Encoded) // a careless caller
	dec, _ := base64.StdEncoding.DecodeString(k.Encoded.Value())
	_, apiKey, _ := strings.Cut(string(dec), ":")
	secrets = append(secrets, k.Encoded.Value(), apiKey)

	_, err = c.ListKeys(ctx, KeyQuery{NamePrefix: "ecklink-", ActiveOnly: true})
	note(err)
	_, err = c.UpdateCrossClusterKey(ctx, k.ID, UpdateKeyRequest{Metadata: map[string]any{"x": "y"}})
	note(err)
	_, err = c.UpdateCrossClusterKey(ctx, "nosuchkey00000000000", UpdateKeyRequest{Metadata: map[string]any{}})
	note(err)
	_, err = c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "_bad", Access: searchLogs})
	note(err)
	_, err = c.PutRemote(ctx, "a", RemoteSettings{ProxyAddress: "h:9443"})
	note(err)
	_, err = c.PutRemote(ctx, "a", RemoteSettings{ProxyAddress: "h:bad"})
	note(err)
	_, err = c.DeleteRemote(ctx, "a")
	note(err)
	_, err = c.RemoteInfo(ctx)
	note(err)
	_, err = c.ReloadSecureSettings(ctx)
	note(err)
	_, err = c.InvalidateKeys(ctx, []string{k.ID, k.ID})
	note(err)

	// Key material sent as a (wrong) password: 401.
	kc, err := NewClient(ClientConfig{URL: srv.URL, Username: "elastic", Password: k.Encoded, Transport: srv.Client().Transport, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kc.Info(ctx)
	note(err)
	// Wrong password after rotation.
	node.SetUser("elastic", "rotated")
	_, err = c.Info(ctx)
	note(err)
	// Missing Secrets.
	_, err = r.Client(ctx, Target{Namespace: "data", Name: "nope"})
	note(err)
	// A bad override that carries a password.
	_, err = ParseEndpoints([]string{"data/logs=https://elastic:" + testPassword + "@h:9200/x"})
	note(err)
	for _, e := range errs {
		if ae, ok := asAPIError(e); ok {
			b, _ := json.Marshal(ae)
			errs = append(errs, fmt.Errorf("%s", b))
		}
	}
	return secrets, errs
}
