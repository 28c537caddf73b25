package metrics

// OtherReason is the label value of every Nack reason not in NackReasons.
const OtherReason = "other"

// NackReasons is the fixed set of Nack reasons counted by name in ecklink_nacks_total: the
// reasons ecklink agents send (the stream layer's, the importer's, the exporter's and the trust
// bundle's). A reason added to the code must be added here to be counted by name; until then it
// counts as "other", which the alert on NACKs still sees.
var NackReasons = map[string]bool{
	// stream layer (agent/peering)
	"SequenceRollback": true, "InvalidSequence": true, "SequenceTooLarge": true, "UnknownMessage": true,
	"InvalidResource": true, "RateLimited": true, "TooLarge": true, "Internal": true,
	// router (agent/app) and the halves' validation of each payload
	"InvalidLink": true, "InvalidImport": true, "InvalidLinkStatus": true, "InvalidCAStatus": true, "InvalidCredentials": true,
	"InvalidRefusal": true,
	// trust bundle (agent/app)
	"InvalidCA": true, "TooManyResources": true, "TrustDiscontinuity": true, "NotPaired": true, "InvalidEndpoints": true,
	// local side (agent/importer)
	"NotRequested": true, "UnsupportedModel": true, "InvalidAPIKey": true, "InvalidAddress": true,
	"InvalidServerName": true, "ModelNotAllowed": true,
	// remote side (agent/exporter)
	"PeerNotGranted": true, "PeerNotFound": true, "LinkLimitExceeded": true,
}

// NackReason returns reason if it is one of NackReasons, else OtherReason.
func NackReason(reason string) string {
	if NackReasons[reason] {
		return reason
	}
	return OtherReason
}
