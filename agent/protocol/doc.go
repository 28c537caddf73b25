// Package protocol is the application protocol spoken over the peer stream: which payload each
// resource key carries, where a received update goes (Router: to the exporter, the importer or
// the trust exchange), the exchange of agent CA bundles and advertised endpoints (TrustSync), and
// the one mapping of a payload message to the oneof of peerv1.Update (Wrap, Outbox).
//
// The layers: package peering moves updates (sequences, acks and refusals, heartbeats, budgets)
// and knows no payload type; package link names links and their resource keys ("import/…",
// "credentials/…", "status/…", "exportca/…", "castatus/…"); this package adds the key "trust" and
// gives every key its meaning. A refusal is the one type peering.RefusalError (the stream turns it
// into the Nack and logs it once); the reasons added here are ReasonInvalidCA,
// ReasonTrustDiscontinuity, ReasonNotPaired and ReasonInvalidEndpoints.
//
// Construction: the peering Manager needs its handler when it is built, and everything the
// Router hands updates to (the halves, the peer controller, the trust exchange) needs the Manager
// to publish. The Manager is therefore built with a Forwarder, and the Router, built complete
// once its parts exist, is given to it with one Forwarder.Set before anything runs. This keeps
// the Router immutable (no field filled in after construction) and leaves peering's constructor
// as it is; a Forwarder used before Set is a wiring bug and panics.
package protocol
