package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// Tags of the integrators' operations.
const (
	tagSend       = "Sending"
	tagEvents     = "Events"
	tagDeliveries = "Deliveries"
	tagWebhooks   = "Webhooks"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// integrations are the operations of integrators and operators (API keys):
// sending notifications, ingesting events, delivery status and webhook
// endpoints. They publish through the outbox, in the request's transaction.
type integrations struct {
	*service
	cfg      config.Config
	outbox   *outbox.Publisher // nil: no database; the security middleware answers 503 first
	notifier *notify.Notifier
	// resolver looks up webhook hosts at registration.
	resolver webhook.Resolver
	// lastSweep is when expired idempotency keys were last deleted (unix ns).
	lastSweep atomic.Int64
}

// registerIntegrations registers the integrators' operations, publishing
// through d's outbox and notifier; without them (New: no database) the
// operations are described and answer 503.
func registerIntegrations(integrator *huma.Group, h *service, d Deps) {
	in := &integrations{service: h, cfg: d.Config, resolver: d.Resolver, outbox: d.Outbox, notifier: d.Notifier}
	if in.resolver == nil {
		in.resolver = net.DefaultResolver
	}
	oapi := integrator.OpenAPI()
	for _, t := range []*huma.Tag{
		{Name: tagSend, Description: "Integrators send notifications to referring doctors: the doctor's preferences, quiet hours and channels apply."},
		{Name: tagEvents, Description: "HTTP ingestion of the inbound event contracts (checkup, order history, user created, internal login) for integrators without Kafka."},
		{Name: tagDeliveries, Description: "The status of a notification's delivery on one channel, with its attempts."},
		{Name: tagWebhooks, Description: "Webhook endpoints of doctors and clinics: Standard Webhooks signatures, secrets shown once, rotation."},
	} {
		if !hasTag(oapi, t.Name) {
			oapi.Tags = append(oapi.Tags, t)
		}
	}
	registerSendNotification(integrator, in)
	registerEvents(integrator, in)
	registerDeliveries(integrator, in)
	registerWebhooks(integrator, in)
}

func hasTag(oapi *huma.OpenAPI, name string) bool {
	for _, t := range oapi.Tags {
		if t.Name == name {
			return true
		}
	}
	return false
}

// ready answers 503 when the operation has no outbox.
func (in *integrations) ready() error {
	if in.outbox == nil || in.db == nil {
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("the API cannot publish: no outbox"),
			http.Header{"Retry-After": {retryAfter}})
	}
	return nil
}

// apiKeyOf is the authenticated API key; the security middleware
// guarantees one on every API-key operation.
func apiKeyOf(ctx context.Context) (auth.APIKey, error) {
	k, ok := auth.APIKeyFromContext(ctx)
	if !ok {
		return auth.APIKey{}, huma.Error401Unauthorized("an API key is required")
	}
	return k, nil
}

// Idempotency.

// idempotency is the Idempotency-Key of one request, hashed.
type idempotency struct {
	apiKeyID    string
	keyHash     string // "" when the request has no key
	operation   string
	requestHash string
}

func sha256Hex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// newIdempotency hashes key and the request: the operation and what
// identifies the request (its canonical JSON body, its path parameters).
func newIdempotency(apiKeyID, key, operation string, request ...string) idempotency {
	id := idempotency{apiKeyID: apiKeyID, operation: operation}
	if key == "" {
		return id
	}
	id.keyHash = sha256Hex(key)
	id.requestHash = sha256Hex(append([]string{operation}, request...)...)
	return id
}

// canonicalJSON is v's JSON with object keys sorted and no insignificant
// whitespace, so the same request hashes the same however it is spelled.
func canonicalJSON(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	out, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// replay is a remembered response.
type replay struct {
	status int
	body   []byte
}

var errKeyReused = huma.Error409Conflict("this Idempotency-Key was already used with a different request; use a new key for a new request")

// claim starts the idempotent part of a request inside tx: it records the
// key (unless the request has none) and returns the first response when
// the key was used before with the same request. The key's row is held by
// tx, so a concurrent request with the same key waits for tx to end and
// then replays its response; if tx rolls back, the key is free again.
func (in *integrations) claim(ctx context.Context, tx bun.Tx, id idempotency) (*replay, error) {
	if id.keyHash == "" {
		return nil, nil
	}
	now := in.now().UTC()
	q := store.NewQueries(tx)
	if err := q.IdempotencyKeyDeleteExpired(ctx, &store.IdempotencyKeyDeleteExpiredParams{
		APIKeyID: id.apiKeyID, KeyHash: id.keyHash, At: now}); err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	recorded, err := q.IdempotencyKeyInsert(ctx, &store.IdempotencyKey{APIKeyID: id.apiKeyID, KeyHash: id.keyHash,
		Operation: id.operation, RequestHash: id.requestHash, CreatedAt: now, ExpiresAt: now.Add(IdempotencyTTL)})
	if err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	if recorded {
		return nil, nil
	}
	prev, err := q.IdempotencyKeyGet(ctx, &store.IdempotencyKeyGetParams{APIKeyID: id.apiKeyID, KeyHash: id.keyHash})
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error409Conflict("a request with this Idempotency-Key is in progress; retry shortly")
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	if prev.RequestHash != id.requestHash {
		return nil, errKeyReused
	}
	if prev.ResponseStatus == 0 {
		return nil, huma.Error409Conflict("a request with this Idempotency-Key is in progress; retry shortly")
	}
	return &replay{status: prev.ResponseStatus, body: []byte(prev.ResponseBody)}, nil
}

// remember stores the response of the request that claimed the key, in tx.
func (in *integrations) remember(ctx context.Context, tx bun.Tx, id idempotency, status int, body any) error {
	if id.keyHash == "" {
		return nil
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("idempotency: encode response: %w", err)
	}
	if err := store.NewQueries(tx).IdempotencyKeySetResponse(ctx, &store.IdempotencyKeySetResponseParams{
		APIKeyID: id.apiKeyID, KeyHash: id.keyHash, Status: status, Body: string(raw)}); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

// sweepEvery is how often expired idempotency keys are deleted, at most.
const idempotencySweepEvery = time.Minute

// sweepIdempotency deletes expired keys, at most once a minute per
// process, best effort.
func (in *integrations) sweepIdempotency(ctx context.Context) {
	now := in.now()
	last := in.lastSweep.Load()
	if now.UnixNano()-last < int64(idempotencySweepEvery) || !in.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if err := store.NewQueries(in.db).IdempotencyKeyDeleteAllExpired(ctx, now.UTC()); err != nil {
		in.logger.WarnContext(ctx, "api: sweep expired idempotency keys", "error", err.Error())
	}
}
