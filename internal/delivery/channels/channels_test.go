package channels_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"2":                             2 * time.Second,
		" 120 ":                         2 * time.Minute,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:59:00 GMT": 0, // in the past
	} {
		assert.Equal(t, want, channels.ParseRetryAfter(in, now), "%q", in)
	}
}

func TestFailureClassificationThroughWrapping(t *testing.T) {
	base := errors.New("boom")
	err := fmt.Errorf("consumer: %w", channels.Permanent("21211", base))
	f, ok := channels.AsFailure(err)
	assert.True(t, ok)
	assert.True(t, f.Permanent)
	assert.True(t, channels.IsPermanent(err))
	assert.ErrorIs(t, err, base)
	assert.Equal(t, "permanent failure [21211]: boom", f.Error())

	tr := channels.Transient("http_429", 2*time.Second, base)
	assert.False(t, channels.IsPermanent(tr))
	assert.Equal(t, "transient failure [http_429] (retry after 2s): boom", tr.Error())
	assert.False(t, channels.IsPermanent(base), "unknown errors are transient")
}

func TestFromHTTPStatus(t *testing.T) {
	h := http.Header{"Retry-After": {"7"}}
	for status, permanent := range map[int]bool{400: true, 401: true, 404: true, 410: true, 408: false, 429: false, 500: false, 503: false} {
		f := channels.FromHTTPStatus(status, h, "", errors.New("x"))
		assert.Equal(t, permanent, f.Permanent, status)
		assert.Equal(t, fmt.Sprintf("http_%d", status), f.Code)
		if !permanent {
			assert.Equal(t, 7*time.Second, f.RetryAfter, status)
		}
	}
}

func TestFromTransportError(t *testing.T) {
	assert.Equal(t, "timeout", channels.FromTransportError(fmt.Errorf("x: %w", context.DeadlineExceeded)).Code)
	assert.Equal(t, "canceled", channels.FromTransportError(context.Canceled).Code)
	f := channels.FromTransportError(errors.New("connection reset"))
	assert.Equal(t, "network", f.Code)
	assert.False(t, f.Permanent)
}
