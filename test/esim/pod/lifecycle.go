package pod

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/test/esim"
)

// minRestartGap is the least time between the last change of a pod's spec or keystore and the
// restart that applies it: replacing a pod takes the kubelet seconds at least (stop, schedule,
// start the JVM). It is above the agent's aggregation grace (2s), which real restarts exceed by far.
const minRestartGap = 2500 * time.Millisecond

// reconcile starts the node once ECK's objects exist, and restarts it (a rolling restart by ECK)
// RestartDelay after the pod spec or the keystore content changed.
func (p *Pod) reconcile(now time.Time) {
	es := p.esObj.get()
	if es == nil {
		return
	}
	live, err := buildSpec(es)
	if err != nil {
		p.log.Warn("elasticsearch spec not usable", "error", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.node == nil {
		p.startLocked(live, now)
		return
	}
	p.loadFileRealmLocked(now)
	if p.applyFileSettingsLocked(now, false) {
		// Reloaded in place: the remote connections are rebuilt with the new credentials.
		p.recheck = true
	}
	// With file-based secure settings ECK deletes <es>-es-secure-settings and the pod template
	// no longer depends on it (filesettings.go).
	keystoreChanged := !p.running.fileBasedSecure() && hashData(p.secureData) != p.keyHash
	if live.Hash == p.running.Hash && !keystoreChanged {
		p.pendingAt, p.pendingHash = time.Time{}, ""
		return
	}
	pending := live.Hash + hashData(p.secureData)
	if pending != p.pendingHash {
		// A new change: the restart picks it up, but a pod cannot be replaced within a moment
		// of the change that triggers it (kubelet stops and recreates it), so it comes no
		// sooner than minRestartGap after the latest change.
		p.pendingHash, p.changedAt = pending, now
	}
	if p.pendingAt.IsZero() {
		p.pendingAt = now
		p.log.Debug("pod template changed, restart scheduled", "delay", p.opts.RestartDelay, "keystore", keystoreChanged)
		return
	}
	if now.Sub(p.pendingAt) < p.opts.RestartDelay || now.Sub(p.changedAt) < minRestartGap {
		return
	}
	// The new pod mounts the Secret as it is now (the kubelet reads it when it creates the pod),
	// not as this process's informer last saw it: under load the watch may lag behind a write
	// that happened before the restart.
	fresh, err := p.currentSecureSettings()
	if err != nil {
		p.log.Warn("restart postponed: failed to read the secure settings", "error", err)
		return
	}
	p.secureData = fresh
	p.kubelet.syncNow(now) // the new pod mounts the volumes as they are
	p.running = live
	p.loadKeystoreAtStartLocked(now)
	p.startTime = now
	p.node.SetStartTime(now)
	p.restarts++
	// ECK rolls the nodes one at a time: the cluster keeps answering and its remote connections
	// stay up on the other nodes, so the last results stand until the immediate re-check.
	p.recheck = true
	p.pendingAt, p.pendingHash = time.Time{}, ""
	p.log.Info("pod restarted", "keystore_entries", len(p.keystore))
}

// startLocked creates the node once the file realm, the HTTP certificate and the transport CA
// exist, as a pod could not start earlier (ECK mounts all three).
func (p *Pod) startLocked(live podSpec, now time.Time) {
	p.kubelet.syncNow(now) // a starting pod mounts what the objects hold now
	for _, name := range []string{p.fileRealmSecret(), p.opts.Name + "-es-http-certs-internal", p.opts.Name + "-es-transport-ca-internal"} {
		if _, ok := p.view.visible(objectKey("secret", name), now); !ok {
			return
		}
	}
	node, err := esim.NewNode(esim.Config{
		Version:     live.Version,
		ClusterName: p.opts.Name,
		NodeName:    p.podName(live.NodeSet),
		Logger:      p.log,
	})
	if err != nil {
		p.log.Error("failed to create node", "error", err)
		return
	}
	node.SetStartTime(now)
	if p.license != [2]string{} {
		// The license lives in the cluster state, which outlives a restart.
		_ = node.SetLicense(p.license[0], p.license[1])
	}
	node.SetRemoteStatusFunc(p.remoteStatus)
	node.SetReloadFunc(p.reload)
	node.SetFileFunc(p.fileExists)
	p.node = node
	p.realmHash = ""
	p.loadFileRealmLocked(now)
	p.running = live
	p.loadKeystoreAtStartLocked(now)
	p.startTime = now
	p.readyOnce.Do(func() { close(p.ready) })
	p.log.Info("pod started", "version", live.Version)
}

// currentSecureSettings reads <es>-es-secure-settings from the API (nil when it does not exist).
func (p *Pod) currentSecureSettings() (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := p.opts.Kube.CoreV1().Secrets(p.opts.Namespace).Get(ctx, p.opts.Name+"-es-secure-settings", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return s.Data, nil
}

func (p *Pod) podName(nodeSet string) string { return p.opts.Name + "-es-" + nodeSet + "-0" }

// fileRealmSecret is the Secret ECK aggregates the file realm and file roles into (users,
// users_roles, roles.yml: the elastic user unless spec.auth.disableElasticUser, ECK's internal
// users, and the users and roles of spec.auth.fileRealm and spec.auth.roles). ECK mounts it at
// /mnt/elastic-internal/xpack-file-realm and links the files into the config directory.
func (p *Pod) fileRealmSecret() string { return p.opts.Name + "-es-xpack-file-realm" }

// loadFileRealmLocked gives the node the file realm as the pod's files show it now. ES watches
// the files and reloads them (resource.reload.interval.high, 5s by default): that delay is not
// added to the kubelet's, which dominates it.
func (p *Pod) loadFileRealmLocked(now time.Time) {
	data, ok := p.view.visible(objectKey("secret", p.fileRealmSecret()), now)
	if !ok {
		return
	}
	if h := hashData(data); h != p.realmHash {
		p.node.SetFileRealm(data["users"], data["users_roles"], data["roles.yml"])
		p.realmHash = h
	}
}

// loadKeystoreAtStartLocked loads the secure settings a starting pod has: the keystore ECK's
// init container builds from <es>-es-secure-settings, or with file-based secure settings the
// cluster secrets of the mounted settings.json.
func (p *Pod) loadKeystoreAtStartLocked(now time.Time) {
	if !p.running.fileBasedSecure() {
		p.loadKeystoreLocked(p.secureData)
		return
	}
	p.loadKeystoreLocked(nil)
	p.fileState.raw = ""
	p.applyFileSettingsLocked(now, true)
}

func (p *Pod) loadKeystoreLocked(data map[string][]byte) {
	ks := make(map[string][]byte, len(data))
	for k, v := range data {
		ks[k] = v
	}
	p.keystore = ks
	p.keyHash = hashData(data)
}

// reload implements POST /_nodes/reload_secure_settings. ES re-reads its keystore file, which
// ECK builds in an init container at pod start: a reload changes nothing. With file-based secure
// settings there is no keystore file at all; the cluster secrets follow settings.json on their
// own (filesettings.go), not this API.
func (p *Pod) reload(password string) error {
	if password != "" {
		// ECK keystores have no password.
		//lint:ignore ST1005 Elasticsearch's exact message
		return errors.New("Provided keystore password was incorrect")
	}
	return nil
}

// credentials returns the keystore value of cluster.remote.<alias>.credentials.
func (p *Pod) credentials(alias string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.keystore["cluster.remote."+alias+".credentials"]
	return strings.TrimSpace(string(v)), ok
}

// atLeast reports whether version v is at least major.minor.
func atLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
