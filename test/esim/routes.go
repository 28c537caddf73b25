package esim

// registerRoutes declares every REST route esim serves. Paths ES has but
// esim does not simulate answer "no handler found", except the index-level
// /{index} route, which answers as a cluster without indices.
func (n *Node) registerRoutes(rt *router) {
	noParams := []string{}
	rt.add("GET", "/", &endpoint{params: noParams, prepare: n.mainInfo, transport: actionMain})
	rt.add("HEAD", "/", &endpoint{params: noParams, prepare: n.mainInfo, transport: actionMain})

	rt.add("GET", "/_cluster/health", &endpoint{params: healthParams, prepare: n.clusterHealth, transport: actionHealth})
	rt.add("GET", "/_cluster/health/{index}", &endpoint{params: healthParams, prepare: n.clusterHealth, transport: actionHealth})
	rt.add("GET", "/_cluster/settings", &endpoint{params: []string{"flat_settings", "include_defaults", "local", "master_timeout", "timeout"}, prepare: n.getClusterSettings, transport: actionGetSettings})
	rt.add("PUT", "/_cluster/settings", &endpoint{params: []string{"flat_settings", "master_timeout", "timeout"}, body: true, prepare: n.putClusterSettings, transport: actionUpdateSettings})
	state := &endpoint{params: clusterStateParams, prepare: n.clusterState, transport: actionClusterState}
	rt.add("GET", "/_cluster/state", state)
	rt.add("GET", "/_cluster/state/{metric}", state)
	rt.add("GET", "/_cluster/state/{metric}/{index}", state)
	rt.add("GET", "/_remote/info", &endpoint{params: noParams, prepare: n.remoteInfo, transport: actionRemoteInfo})
	rt.add("GET", "/_license", &endpoint{params: []string{"local", "accept_enterprise"}, prepare: n.getLicense, transport: actionGetLicense})

	// Authenticate is authorized for every user (RBACEngine's same-user check).
	auth := &endpoint{params: noParams, prepare: func(c *reqCtx) (action, error) {
		return func() (*response, error) { return ok(n.authenticateResponse(c.auth)) }, nil
	}}
	rt.add("GET", "/_security/_authenticate", auth)

	if n.ver.hasCrossClusterKeys() {
		rt.add("POST", "/_security/cross_cluster/api_key", &endpoint{params: noParams, body: true, prepare: n.createCrossClusterKey, transport: actionCreateCrossCluster})
		rt.add("PUT", "/_security/cross_cluster/api_key/{id}", &endpoint{params: noParams, body: true, prepare: n.updateCrossClusterKey, transport: actionUpdateCrossCluster})
	}
	rest := &endpoint{params: []string{"refresh"}, body: true, prepare: n.createRestKey, transport: actionCreateAPIKey}
	rt.add("POST", "/_security/api_key", rest)
	rt.add("PUT", "/_security/api_key", rest)
	rt.add("GET", "/_security/api_key", &endpoint{params: n.getKeyParams(), prepare: n.getAPIKeys, transport: actionGetAPIKey})
	rt.add("DELETE", "/_security/api_key", &endpoint{params: noParams, body: true, prepare: n.invalidateAPIKeys, transport: actionInvalidateAPIKey})
	queryParams := []string{"with_limited_by", "typed_keys"}
	if n.ver.hasProfileUID() {
		queryParams = append(queryParams, "with_profile_uid")
	}
	query := &endpoint{params: queryParams, body: true, prepare: n.queryAPIKeys, transport: actionQueryAPIKey}
	rt.add("GET", "/_security/_query/api_key", query)
	rt.add("POST", "/_security/_query/api_key", query)
	rt.add("PUT", "/_security/api_key/{ids}", &endpoint{params: noParams, body: true, prepare: unsupported("the update API key API")})

	reload := &endpoint{params: []string{"timeout"}, body: true, prepare: n.reloadSecureSettings, transport: actionReloadSecure}
	rt.add("POST", "/_nodes/reload_secure_settings", reload)
	rt.add("POST", "/_nodes/{node_id}/reload_secure_settings", reload)
	nodeParams := []string{"flat_settings", "timeout", "master_timeout"}
	rt.add("GET", "/_nodes", &endpoint{params: nodeParams, prepare: n.nodesInfo, transport: actionNodesInfo})
	rt.add("GET", "/_nodes/{nodes_or_metric}", &endpoint{params: nodeParams, prepare: n.nodesInfo, transport: actionNodesInfo})
	rt.add("GET", "/_nodes/{node_id}/{metric}", &endpoint{params: nodeParams, prepare: n.nodesInfo, transport: actionNodesInfo})

	index := &endpoint{params: []string{"allow_no_indices", "expand_wildcards", "ignore_unavailable", "flat_settings",
		"include_defaults", "local", "master_timeout", "timeout", "features"}, prepare: n.indexStub}
	for _, m := range []string{"GET", "HEAD", "DELETE"} {
		rt.add(m, "/{index}", index)
	}
	rt.add("PUT", "/{index}", &endpoint{params: noParams, body: true, prepare: unsupported("index creation")})
}
