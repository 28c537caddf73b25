package exporter

// keyMetadata is what the agent records on each cross-cluster API key it makes, stored as
// metadata.ecklink.<field> so that keys can be queried by it (ListKeys). The stored form is the
// wire format of keys already in Elasticsearch: field names and nesting must not change, and a
// field an older release wrote must stay harmless when read (parseKeyMetadata ignores what it
// does not know).
type keyMetadata struct {
	// The fields the export decides: the agent writes them on every key and brings live keys to
	// them in place (differs).
	ManagedBy   string // always managedBy
	Environment string // the environment that made the key
	Peer        string // the consuming environment
	Link        string // link.ID.String()
	Export      string // namespace/name of the ClusterExport that serves the link
	AccessHash  string // elastic.AccessHash of the key's access

	// The rotation request the key answers (rotatenow.go): the key's own history, written when
	// the key is made and carried over by in-place updates, never decided by the export.
	RotationRequest string
	// RotationEmergency is recorded only with a RotationRequest.
	RotationEmergency bool
}

// Key metadata lives under one object, so it is queryable as metadata.ecklink.<field>.
const metaRoot = "ecklink"

// The stored field names under metaRoot.
const (
	metaManagedBy   = "managed_by"
	metaEnvironment = "environment"
	metaPeer        = "peer"
	metaLink        = "link"
	metaExport      = "export"
	metaAccessHash  = "access_hash"
	// Rotations on request: the request a key answers (every key made while a request is
	// pending answers it, whatever made it, so a scheduled rotation does not cause another),
	// and "true" on the key made for an emergency request, whose pass invalidates the other
	// keys at once (and only that key's: a later scheduled rotation is make-before-break again,
	// although the RemoteCluster still carries the request).
	metaRotationRequest   = "rotation_request"
	metaRotationEmergency = "rotation_invalidate_old"
)

// managedBy is the value of managed_by on every key the agent makes.
const managedBy = "ecklink"

// metaQueryField is the name a ListKeys query gives a metadata field.
func metaQueryField(field string) string { return metaRoot + "." + field }

// asMap is the metadata Elasticsearch stores for m (an update replaces the whole of it).
func (m keyMetadata) asMap() map[string]any {
	root := map[string]any{
		metaManagedBy:   m.ManagedBy,
		metaEnvironment: m.Environment,
		metaPeer:        m.Peer,
		metaLink:        m.Link,
		metaExport:      m.Export,
		metaAccessHash:  m.AccessHash,
	}
	if m.RotationRequest != "" {
		root[metaRotationRequest] = m.RotationRequest
		if m.RotationEmergency {
			root[metaRotationEmergency] = "true"
		}
	}
	return map[string]any{metaRoot: root}
}

// parseKeyMetadata reads a key's stored metadata: a missing field, or one that is not a
// string, reads as empty; fields it does not know are ignored.
func parseKeyMetadata(meta map[string]any) keyMetadata {
	root, _ := meta[metaRoot].(map[string]any)
	field := func(name string) string {
		s, _ := root[name].(string)
		return s
	}
	return keyMetadata{
		ManagedBy:         field(metaManagedBy),
		Environment:       field(metaEnvironment),
		Peer:              field(metaPeer),
		Link:              field(metaLink),
		Export:            field(metaExport),
		AccessHash:        field(metaAccessHash),
		RotationRequest:   field(metaRotationRequest),
		RotationEmergency: field(metaRotationEmergency) == "true",
	}
}

// differs reports whether stored lacks or differs in any field the export decides (m's);
// the rotation fields, the key's own history, and fields the agent does not write do not count.
func (m keyMetadata) differs(stored keyMetadata) bool {
	return m.ManagedBy != stored.ManagedBy || m.Environment != stored.Environment || m.Peer != stored.Peer ||
		m.Link != stored.Link || m.Export != stored.Export || m.AccessHash != stored.AccessHash
}

// withRotation is m recording the rotation request a new key answers and whether it was made
// for an emergency; m itself when there is no request.
func (m keyMetadata) withRotation(request string, emergency bool) keyMetadata {
	if request == "" {
		return m
	}
	m.RotationRequest, m.RotationEmergency = request, emergency
	return m
}

// keeping is m as an in-place update writes it to a key whose metadata is stored: what the key
// records of a rotation request is kept (an update replaces the whole metadata).
func (m keyMetadata) keeping(stored keyMetadata) keyMetadata {
	return m.withRotation(stored.RotationRequest, stored.RotationEmergency)
}
