// Package rotation holds what the rotations on request of the agent's CAs have in common
// (`agentctl rotate identity` and `agentctl rotate signing`): agentctl writes the request, an id,
// in an annotation of the agent's public ConfigMap ecklink-agent-identity, and the agent reports
// its progress in another annotation of it, a Status in JSON. Asking needs neither a CA's key
// nor its Secret.
package rotation

import (
	"encoding/json"
	"time"
)

// Phases every rotation on request goes through; a CA may have steps of its own between
// Staged and Done.
const (
	// Staged: the new CA is sent to the peers; it signs once they all trust it.
	Staged = "Staged"
	// Done: the new CA signs.
	Done = "Done"
	// Failed: the request cannot be taken up; the message says why.
	Failed = "Failed"
)

// Status is the agent's report on a rotation request. It holds fingerprints and peer names
// only.
type Status struct {
	Request string `json:"request"`
	// RetireOld is the agent CA's retire-old option (agentctl rotate identity --retire-old).
	RetireOld bool      `json:"retireOld,omitempty"`
	Phase     string    `json:"phase"`
	Message   string    `json:"message"`
	OldCA     string    `json:"oldCA,omitempty"`
	NewCA     string    `json:"newCA,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Finished reports whether the agent is done with the request (Done or Failed).
func (s Status) Finished() bool { return s.Phase == Done || s.Phase == Failed }

// Pending reports whether request id is one the agent has not finished, s being its last
// report.
func (s Status) Pending(id string) bool { return id != "" && !(s.Request == id && s.Finished()) }

// ReadStatus returns the report held in annotation key of annotations: zero if there is none or
// if it does not parse.
func ReadStatus(annotations map[string]string, key string) Status {
	var s Status
	_ = json.Unmarshal([]byte(annotations[key]), &s)
	return s
}
