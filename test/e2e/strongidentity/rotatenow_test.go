package strongidentity

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/ctl"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
)

// TestRotateSigningNow: `agentctl rotate signing` on east (issue 15 §6) rotates its signing CA
// now on a live link that requires strong identity: the command returns once the new CA signs,
// the local signing certificate is reissued from it, and the link, sampled every second, never
// disconnects.
func TestRotateSigningNow(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	l := setup(ctx, t, "si-rotnow", "9.3.2", "9.3.2", v1alpha1.StrongIdentityRequired)
	probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	defer probe.Stop()
	t.Logf("connected %s after the import", l.connect(ctx, t, probe).Round(time.Millisecond))
	l.waitStep(ctx, t, "Enforced", 90*time.Second)
	steady := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	defer steady.Stop()
	if _, err := steady.WaitConnected(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	before, _ := l.signingState(ctx, t)
	start := time.Now()
	var out, errb bytes.Buffer
	cmd := ctl.NewCommand(ctl.Options{Out: &out, Err: &errb})
	cmd.SetArgs([]string{"rotate", "signing", "--kubeconfig", l.local.Env.AdminKubeconfig, "-n", harness.AgentNamespace, "--timeout", "2m"})
	code := ctl.Execute(ctx, cmd)
	took := time.Since(start)
	t.Logf("agentctl rotate signing: exit %d in %s\n%s%s", code, took.Round(100*time.Millisecond), out.String(), errb.String())
	if code != 0 || !strings.Contains(out.String(), "rotated the signing CA of east: ") {
		t.Fatalf("rotate signing: exit %d", code)
	}
	if !strings.Contains(errb.String(), "waiting for the rotation of the signing CA") {
		t.Errorf("no progress on stderr")
	}
	harness.WaitFor(ctx, t, 30*time.Second, "signing certificate reissued from a new CA", func() (bool, string) {
		ca, cert := l.signingState(ctx, t)
		return pemutil.Fingerprint(ca) != pemutil.Fingerprint(before) && cert.CheckSignatureFrom(ca) == nil, "certificate not reissued from a new CA yet"
	})
	t.Logf("new signing CA signs %s after the command started; certificate reissued %s after", took.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	// Past the kubelet's delay: the pod signs with the new certificate.
	time.Sleep(5 * time.Second)
	requireNoDisconnect(t, steady, "rotate signing")
}
