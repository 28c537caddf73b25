package peering

// Log keys (snake_case, shared by every log line of this package). Payload contents are never
// logged: credentials carry API keys.
const (
	logPeer     = "peer"
	logResource = "resource"
	logSequence = "sequence"
	logReason   = "reason"
	logMessage  = "message"
	logEndpoint = "endpoint"
	logError    = "error"
	logDialed   = "dialed"
	logRetryIn  = "retry_in"
	logVersion  = "peer_version"
	logTimeout  = "receive_timeout"
	// logSource is a client's source address (IPv4 address or IPv6 /64), logSuppressed the
	// number of like lines held back since the last one (see Port.refused).
	logSource     = "source"
	logSuppressed = "suppressed"
)
