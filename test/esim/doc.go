// Package esim simulates one Elasticsearch node for the ecklink test bed:
// its REST API (security API keys, cluster settings for remote clusters,
// remote info, secure settings reload, health, info and nodes info), its API
// key store and the server-side authentication of cross-cluster API key
// credentials used on the remote cluster port (9443). It answers as
// Elasticsearch answers: paths, bodies, status codes, error shapes and headers
// follow shared/reference/elasticsearch-api.md.
//
// A Node holds state only in memory. Listeners, TLS and the Kubernetes
// binding belong to the caller: Handler serves the REST API on whatever
// listener the caller chooses; SetFileRealm, SetUser, SetRemoteStatusFunc, SetReloadFunc,
// SetStartTime and SetFileFunc feed users, remote connection state, keystore
// reload semantics, restarts and the files the signing settings name into the
// node; RemoteClusters, Subscribe, APIKey and
// AuthenticateCrossCluster serve the caller's remote cluster client and server;
// NewSigner and AuthenticateCrossClusterRequest add 9.3's strong identity
// verification (signed cross-cluster headers checked against
// cluster.remote.signing.certificate_authorities and the key's
// certificate_identity, see signing.go).
//
// # Scope
//
// Served: GET|HEAD /, GET /_cluster/health[/{index}], GET|PUT
// /_cluster/settings, GET /_cluster/state[/{metric}] (metadata.reserved_state.
// file_settings, SetFileSettings), GET /_license, GET /_remote/info, GET /_security/_authenticate,
// POST /_security/cross_cluster/api_key, PUT
// /_security/cross_cluster/api_key/{id}, POST|PUT /_security/api_key (REST
// keys; role descriptors are kept but do not restrict the key),
// GET|DELETE /_security/api_key, GET|POST /_security/_query/api_key,
// POST /_nodes[/{node_id}]/reload_secure_settings, GET /_nodes[/...].
// GET|HEAD|DELETE /{index} answer 404 index_not_found_exception (a cluster
// without indices). Other paths answer as ES does for unknown routes.
// Users come from the file realm (SetFileRealm: ES's users, users_roles and
// roles.yml files, bcrypt hashes) or SetUser (superusers); each request is
// authorized against the caller's cluster privileges and refused with ES's
// 403 security_exception when they do not grant its transport action
// (authz.go says what is and is not modelled).
//
// Cluster settings accepted besides cluster.remote.<alias>.*:
// cluster.routing.allocation.enable, cluster.routing.allocation.disk.threshold_enabled,
// action.destructive_requires_name, indices.recovery.max_bytes_per_sec,
// cluster.max_shards_per_node and logger.*; from 9.3 also the signing
// settings (cluster.remote.<alias>.signing.* and cluster.remote.signing.*).
// cluster.name, node.name, cluster.remote.initial_connect_timeout,
// cluster.remote.node.attr, cluster.remote.connections_per_cluster and the
// secure settings (credentials, signing secrets) are known but not dynamic.
// Anything else is "not recognized".
//
// # Fidelity notes
//
// Points marked [mem] in comments come from memory of the ES source and are
// not verified against a running Elasticsearch. Known approximations:
//   - Request bodies are parsed whole before their fields are read, so a
//     JSON syntax error is reported even where ES, which parses lazily,
//     would first report an earlier semantic error. Jackson's message texts
//     are reproduced in substance, not byte for byte.
//   - Only JSON bodies are accepted (ES also takes YAML, CBOR and Smile).
//   - ?pretty indents with Go's indenter; filter_path is accepted and ignored.
//   - certificate_identity is compiled with Go's RE2, not java.util.regex.
//   - The query API implements the documented query types over the
//     queryable fields; aggregations are refused.
package esim
