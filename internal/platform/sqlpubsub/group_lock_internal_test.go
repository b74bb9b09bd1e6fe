package sqlpubsub

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

type levelCounter struct {
	watermill.NopLogger
	errors, debugs *int
}

func (l levelCounter) Error(string, error, watermill.LogFields) { *l.errors++ }
func (l levelCounter) Debug(string, watermill.LogFields)        { *l.debugs++ }
func (l levelCounter) With(watermill.LogFields) watermill.LoggerAdapter {
	return l
}

// The failed rollback of a query canceled by the subscription's end is not
// an error worth an operator's attention; every other error still is.
func TestStopQuietLoggerDowngradesOnlyCanceledQueries(t *testing.T) {
	var errs, debugs int
	logger := stopQuietLogger{levelCounter{errors: &errs, debugs: &debugs}}.With(watermill.LogFields{"topic": "t"})

	canceled := fmt.Errorf("could not query message: %w", context.Canceled)
	logger.Error("could not rollback tx for querying message", errors.New("conn closed"), watermill.LogFields{"query_err": canceled})
	if errs != 0 || debugs != 1 {
		t.Fatalf("canceled query: %d errors, %d debug lines; want 0 and 1", errs, debugs)
	}

	broken := fmt.Errorf("could not query message: %w", errors.New("relation does not exist"))
	logger.Error("could not rollback tx for querying message", errors.New("conn closed"), watermill.LogFields{"query_err": broken})
	logger.Error("could not commit tx for querying message", errors.New("disk full"), nil)
	if errs != 2 || debugs != 1 {
		t.Fatalf("real failures: %d errors, %d debug lines; want 2 and 1", errs, debugs)
	}
}
