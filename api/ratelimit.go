package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"

	"github.com/rfd-notify/rfd/internal/platform/ratelimit"
)

// rateLimits are the API's request rate limits: one token bucket per API
// key and one per doctor, each refilled at its rate per second with a burst
// of the same size. A nil limiter is unlimited.
type rateLimits struct {
	perKey    *ratelimit.Limiter
	perDoctor *ratelimit.Limiter
	keyRate   float64
	docRate   float64
}

func newRateLimits(perKey, perDoctor float64) rateLimits {
	return rateLimits{perKey: perSecond(perKey), perDoctor: perSecond(perDoctor), keyRate: perKey, docRate: perDoctor}
}

// perSecond is a limiter of r requests per second with a burst of r
// (at least 1); nil (unlimited) when r is not positive.
func perSecond(r float64) *ratelimit.Limiter {
	if !(r > 0) || math.IsInf(r, 1) {
		return nil
	}
	return ratelimit.New(rate.Limit(r), int(math.Max(1, math.Ceil(r))))
}

// allow takes a token of key from l. When there is none it answers 429
// problem+json with Retry-After (whole seconds, at least 1) and reports
// false.
func (s *Server) allow(api huma.API, ctx huma.Context, l *ratelimit.Limiter, key, what string, perSecond float64) bool {
	if l == nil {
		return true
	}
	ok, wait := l.Take(key)
	if ok {
		return true
	}
	secs := retryAfterSeconds(wait)
	s.h.logger.DebugContext(ctx.Context(), "api: rate limited", "operation", ctx.Operation().OperationID,
		"limit", what, "retry_after", secs)
	ctx.SetHeader("Retry-After", strconv.Itoa(secs))
	_ = huma.WriteErr(api, ctx, http.StatusTooManyRequests,
		fmt.Sprintf("too many requests: at most %v per second per %s; retry after %d s", perSecond, what, secs))
	return false
}

// retryAfterSeconds rounds wait up to whole seconds, at least 1 and at most
// an hour (a limiter that can never allow has an infinite wait).
func retryAfterSeconds(wait time.Duration) int {
	secs := int(math.Ceil(wait.Seconds()))
	if wait >= time.Hour || wait == rate.InfDuration {
		secs = int(time.Hour / time.Second)
	}
	return max(secs, 1)
}

// documentRateLimit adds the 429 answer of the rate limits, with its
// Retry-After header, to every operation that authenticates its caller.
// Its body is the problem details of the operation's other errors.
func documentRateLimit(_ *huma.OpenAPI, op *huma.Operation) {
	if len(op.Security) == 0 {
		return
	}
	addProblemResponse(op, http.StatusTooManyRequests, &huma.Response{
		Description: "Too Many Requests: the caller's rate limit (per API key or per doctor) is exhausted; retry after Retry-After seconds.",
		Headers: map[string]*huma.Header{
			"Retry-After": {
				Description: "Seconds to wait before the next request is allowed.",
				Schema:      &huma.Schema{Type: huma.TypeInteger, Minimum: new(float64(1)), Examples: []any{1}},
			},
		},
	})
}

// addProblemResponse documents resp as op's answer with status code,
// unless op documents one already, with the problem+json content of op's
// other errors: for errors every operation may answer, added after
// registration.
func addProblemResponse(op *huma.Operation, code int, resp *huma.Response) {
	if op.Responses == nil {
		op.Responses = map[string]*huma.Response{}
	}
	key := strconv.Itoa(code)
	if _, ok := op.Responses[key]; ok {
		return
	}
	for _, c := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable, http.StatusInternalServerError} {
		if r := op.Responses[strconv.Itoa(c)]; r != nil && len(r.Content) > 0 {
			resp.Content = r.Content
			break
		}
	}
	op.Responses[key] = resp
}
