package esim

// APIKeySecret returns the secret of the key with the given id (invalidated keys included), so
// that a test can check that no secret an agent was handed ever shows up where it must not (logs,
// events, status). Production code never needs it: Elasticsearch does not return secrets.
func (n *Node) APIKeySecret(id string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.keys[id]
	if k == nil {
		return "", false
	}
	return k.secret, true
}
