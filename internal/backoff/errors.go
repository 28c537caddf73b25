package backoff

import "errors"

// Class says how a retry loop should react to an error.
type Class int

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassRetryLater retries with the growing backoff; it is the class of unclassified errors.
	ClassRetryLater
	// ClassRetrySoon retries after a short delay without growing the backoff, for errors that
	// are expected to clear at once (a leader moved, a connection that worked dropped).
	ClassRetrySoon
	// ClassGiveUp stops retrying: retrying cannot help until something else changes.
	ClassGiveUp
)

// String returns the class name for logs.
func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassRetryLater:
		return "retry_later"
	case ClassRetrySoon:
		return "retry_soon"
	case ClassGiveUp:
		return "give_up"
	default:
		return "unknown"
	}
}

// RetryLaterError marks an error to be retried with the growing backoff.
type RetryLaterError struct{ Err error }

// RetrySoonError marks an error to be retried after a short delay.
type RetrySoonError struct{ Err error }

// GiveUpError marks an error that retrying cannot fix.
type GiveUpError struct{ Err error }

func (e *RetryLaterError) Error() string { return e.Err.Error() }
func (e *RetrySoonError) Error() string  { return e.Err.Error() }
func (e *GiveUpError) Error() string     { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *RetryLaterError) Unwrap() error { return e.Err }

// Unwrap returns the wrapped error.
func (e *RetrySoonError) Unwrap() error { return e.Err }

// Unwrap returns the wrapped error.
func (e *GiveUpError) Unwrap() error { return e.Err }

// RetryLater wraps err as ClassRetryLater; nil stays nil.
func RetryLater(err error) error {
	if err == nil {
		return nil
	}
	return &RetryLaterError{Err: err}
}

// RetrySoon wraps err as ClassRetrySoon; nil stays nil.
func RetrySoon(err error) error {
	if err == nil {
		return nil
	}
	return &RetrySoonError{Err: err}
}

// GiveUp wraps err as ClassGiveUp; nil stays nil.
func GiveUp(err error) error {
	if err == nil {
		return nil
	}
	return &GiveUpError{Err: err}
}

// ClassOf returns the class of err. The outermost marker wins when several are nested, so a
// caller can reclassify an error it received.
func ClassOf(err error) Class {
	if err == nil {
		return ClassNone
	}
	for err != nil {
		switch err.(type) {
		case *GiveUpError:
			return ClassGiveUp
		case *RetrySoonError:
			return ClassRetrySoon
		case *RetryLaterError:
			return ClassRetryLater
		}
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				if c := ClassOf(e); c != ClassRetryLater {
					return c
				}
			}
			return ClassRetryLater
		}
		err = errors.Unwrap(err)
	}
	return ClassRetryLater
}
