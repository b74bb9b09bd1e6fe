// Package msgerr is how a message handler says what kind of failure it hit.
// A permanent error (undecodable payload, failed validation) will fail the
// same way on every attempt, so the router sends the message to the poison
// topic at once. Anything else is transient: retried with backoff, and
// poisoned only when the retries are exhausted.
package msgerr

import (
	"errors"
	"fmt"
)

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// TransientError marks a failure that may succeed on a later attempt.
type TransientError struct {
	Err error
}

func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Permanent wraps err as permanent. Its text becomes the poison reason, so
// it must name the problem (e.g. the field) without quoting patient data.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// Transient wraps err as transient.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
