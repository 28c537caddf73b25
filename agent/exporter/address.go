package exporter

import (
	"errors"
	"fmt"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// addressError is why the address peers dial is not known, with the AddressResolved reason
// that says so.
type addressError struct {
	reason string
	msg    string
}

func (e *addressError) Error() string { return e.msg }

func addressErr(reason, format string, args ...any) error {
	return &addressError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// addressReason is the AddressResolved reason of err: ServiceNotFound, InvalidServicePort, or
// LoadBalancerPending for anything else (no load balancer address yet, a Service that is not a
// LoadBalancer, an API error reading it).
func addressReason(err error) string {
	var ae *addressError
	if errors.As(err, &ae) {
		return ae.reason
	}
	return v1alpha1.ReasonLoadBalancerPending
}
