package esim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures a Node.
type Config struct {
	// Version is the simulated Elasticsearch version, e.g. "8.14.3" or
	// "9.3.2". It drives behaviour differences. Must be 8.x or 9.x.
	Version string
	// ClusterName is reported by GET / and other APIs.
	ClusterName string
	// NodeName is the node's name.
	NodeName string
	// ClusterUUID is generated when empty.
	ClusterUUID string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives the node's log lines; hclog.NewNullLogger() when nil.
	Logger hclog.Logger
}

// RemoteStatus is the connection state of one remote cluster alias, as
// reported by GET /_remote/info.
type RemoteStatus struct {
	// Connected is true when at least one socket/node is connected.
	Connected bool
	// NumSocketsConnected is num_proxy_sockets_connected (proxy mode) or
	// num_nodes_connected (sniff mode).
	NumSocketsConnected int
	// HasCredentials reports that cluster.remote.<alias>.credentials is
	// loaded from the keystore (shows cluster_credentials).
	HasCredentials bool
}

// Node is one simulated Elasticsearch node. All methods are safe for
// concurrent use.
type Node struct {
	cfg     Config
	ver     esVersion
	log     hclog.Logger
	nodeID  string
	handler http.Handler

	mu           sync.Mutex
	users        map[string]string // name -> password (SetUser: superusers)
	realm        *fileRealm        // SetFileRealm
	authCache    map[string][sha256.Size]byte
	keys         map[string]*apiKey
	keyOrder     []string
	persistent   settingsMap
	transient    settingsMap
	startTime    time.Time
	remoteStatus func(alias string) RemoteStatus
	reload       func(password string) error
	fileFunc     func(path string) (string, bool)
	subs         map[int]chan struct{}
	license      licenseState
	fileSettings *FileSettingsState // SetFileSettings
	nextSub      int
}

// NewNode validates cfg and returns a node with no users, no API keys and no
// cluster settings.
func NewNode(cfg Config) (*Node, error) {
	if cfg.Version == "" {
		return nil, errors.New("failed to create node: Version is required")
	}
	ver, err := parseVersion(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("failed to create node: %w", err)
	}
	if cfg.ClusterName == "" {
		return nil, errors.New("failed to create node: ClusterName is required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("failed to create node: NodeName is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.ClusterUUID == "" {
		cfg.ClusterUUID = randomID(16)
	}
	n := &Node{
		cfg:        cfg,
		ver:        ver,
		log:        cfg.Logger,
		nodeID:     randomID(16),
		users:      map[string]string{},
		authCache:  map[string][sha256.Size]byte{},
		keys:       map[string]*apiKey{},
		persistent: settingsMap{},
		transient:  settingsMap{},
		subs:       map[int]chan struct{}{},
	}
	n.startTime = n.now()
	n.license = licenseState{typ: LicenseEnterprise, status: LicenseActive, uid: randomUUID(), issued: n.now()}
	n.handler = n.newRouter()
	return n, nil
}

// Handler returns the node's REST API. TLS is served by the caller.
func (n *Node) Handler() http.Handler { return n.handler }

// NodeID returns the node's id (the key of "nodes" in node-level responses).
func (n *Node) NodeID() string { return n.nodeID }

// ClusterUUID returns the cluster UUID reported by GET /.
func (n *Node) ClusterUUID() string { return n.cfg.ClusterUUID }

// SetUser adds or replaces a user of the file realm ("file1", as ECK
// configures it) with the superuser role, as a test's shortcut for a users
// file entry. Users of SetFileRealm have the roles the files give them.
func (n *Node) SetUser(name, password string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.users[name] = password
}

// RemoveUser removes a user. API keys it owns keep working, as in ES.
func (n *Node) RemoveUser(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.users, name)
}

// SetStartTime sets the JVM start time reported by GET /_nodes (to model restarts).
func (n *Node) SetStartTime(t time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.startTime = t
}

// SetRemoteStatusFunc sets the provider of remote connection state consulted
// by GET /_remote/info. With none set, every remote is disconnected.
func (n *Node) SetRemoteStatusFunc(f func(alias string) RemoteStatus) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.remoteStatus = f
}

// SetReloadFunc sets the hook of POST /_nodes/reload_secure_settings. It gets
// the secure_settings_password ("" when none was sent). A nil error makes a
// success entry; an error makes the node entry carry reload_exception (an
// *Error renders with its own type and reason, others as type "exception").
func (n *Node) SetReloadFunc(f func(password string) error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reload = f
}

// Subscribe returns a channel that receives a value (coalesced, never
// blocking the node) whenever cluster settings or API keys change, and a
// function that cancels the subscription.
func (n *Node) Subscribe() (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := make(chan struct{}, 1)
	id := n.nextSub
	n.nextSub++
	n.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			delete(n.subs, id)
		})
	}
}

// notifyLocked signals subscribers; n.mu must be held.
func (n *Node) notifyLocked() {
	for _, ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (n *Node) now() time.Time { return n.cfg.Now() }

// randomID returns n random bytes as unpadded URL-safe base64 (ES's
// UUIDs.base64UUID is 20 chars for 15 bytes; secrets are 22 chars for 16).
func randomID(nbytes int) string {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("failed to read random bytes: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
