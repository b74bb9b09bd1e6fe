package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rfd-notify/rfd/internal/store"
)

// APIKeyPrefix starts every API key, so a key is recognisable in a header
// (and by secret scanners in a repository).
const APIKeyPrefix = "rfdk_"

// Scopes of API keys.
const (
	ScopeNotificationsWrite = "notifications:write"
	ScopeBroadcastsWrite    = "broadcasts:write"
	ScopeDoctorsRead        = "doctors:read"
	ScopePoisonRead         = "poison:read"
	ScopePoisonWrite        = "poison:write"
	ScopeReportsRead        = "reports:read"

	// Ingestion is scoped per inbound stream of POST /v1/events/{type}: a
	// lab feed that may send checkups cannot thereby rewrite or deactivate
	// doctors, which is what user-created events do.
	ScopeEventsCheckup       = "events:checkup"
	ScopeEventsOrderHistory  = "events:order-history"
	ScopeEventsUserCreated   = "events:user-created"
	ScopeEventsInternalLogin = "events:internal-login"

	// ScopeEventsWrite is retired: it granted every inbound stream. Keys
	// issued with it keep working for the clinical streams they were issued
	// for (see legacyGrants); no new key gets it.
	ScopeEventsWrite = "events:write"

	// ScopeDeliveriesRead reads any delivery (operators, support); a key
	// with only notifications:write reads the deliveries it caused.
	ScopeDeliveriesRead = "deliveries:read"
	// ScopeCoveringApprove approves a covering arrangement in place of
	// the covering doctor (operators).
	ScopeCoveringApprove = "covering:approve"
)

// ScopeInfo names a scope and says what it grants.
type ScopeInfo struct {
	Name        string
	Description string
}

// ScopeCatalog lists every scope a key can be given, with what it grants:
// the spec and `rfd apikey create` describe scopes from it.
var ScopeCatalog = []ScopeInfo{
	{ScopeEventsCheckup, "POST /v1/events/checkup-events: checkups and their result versions"},
	{ScopeEventsOrderHistory, "POST /v1/events/order-history-events: order status changes"},
	{ScopeEventsUserCreated, "POST /v1/events/user-created: create, change or deactivate any doctor (e-mail, phone, active); for user management only"},
	{ScopeEventsInternalLogin, "POST /v1/events/internal-login: doctors' logins; for user management only"},
	{ScopeNotificationsWrite, "send notifications to doctors (POST /v1/notifications) and manage the key's webhook endpoints (/v1/webhooks)"},
	{ScopeBroadcastsWrite, "send and read announcements (/v1/broadcasts)"},
	{ScopeDoctorsRead, "read doctors' profiles (GET /v1/doctors/{id})"},
	{ScopePoisonRead, "list and inspect poisoned messages (/v1/admin/poison)"},
	{ScopePoisonWrite, "replay or discard poisoned messages (/v1/admin/poison)"},
	{ScopeReportsRead, "read the critical-result timeliness report (/v1/admin/reports)"},
	{ScopeDeliveriesRead, "read any delivery and its status (GET /v1/deliveries/{id}); a notifications:write key reads only the deliveries of notifications it sent"},
	{ScopeCoveringApprove, "approve a covering arrangement in the covering doctor's place (POST /v1/admin/covering/{id}/approve)"},
}

// Scopes lists every scope a new key can be given.
var Scopes = scopeNames()

func scopeNames() []string {
	names := make([]string, len(ScopeCatalog))
	for i, s := range ScopeCatalog {
		names[i] = s.Name
	}
	return names
}

// legacyGrants are the retired scopes that existing keys may still carry,
// and the scopes each still grants. events:write was issued for lab feeds
// posting checkups and order history; it no longer grants user-created or
// internal-login, which rewrite doctors' identities: such a key needs
// events:user-created or events:internal-login explicitly.
var legacyGrants = map[string][]string{
	ScopeEventsWrite: {ScopeEventsCheckup, ScopeEventsOrderHistory},
}

// APIKey is an integrator's or operator's key, without its secret.
type APIKey struct {
	ID   string
	Name string
	// Prefix is the key's first characters, enough to recognise it in a
	// listing; the key itself is never stored.
	Prefix     string
	Hash       string
	ScopesText string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

func apiKeyFromRow(r *store.APIKey) APIKey {
	return APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, Hash: r.Hash, ScopesText: r.Scopes,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: r.LastUsedAt}
}

// Scopes are the key's scopes.
func (k APIKey) Scopes() []string { return strings.Fields(k.ScopesText) }

// HasScope reports whether the key carries scope, itself or through a
// retired scope that still grants it.
func (k APIKey) HasScope(scope string) bool {
	for _, s := range k.Scopes() {
		if s == scope || slices.Contains(legacyGrants[s], scope) {
			return true
		}
	}
	return false
}

// APIKeys issues, lists, revokes and verifies API keys.
type APIKeys struct {
	q   store.APIKeyExecutor
	now func() time.Time
}

// NewAPIKeys returns the keys kept in q.
func NewAPIKeys(q store.APIKeyExecutor, now func() time.Time) *APIKeys {
	if now == nil {
		now = time.Now
	}
	return &APIKeys{q: q, now: now}
}

// hashKey is the stored form of a key: the SHA-256 of 32 random bytes needs
// no salt or slow hash, since nothing about it can be guessed.
func hashKey(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// Create makes a key with name and scopes, valid until expiresAt (nil: no
// expiry). The returned secret is the key itself: it is shown once and
// cannot be recovered.
func (s *APIKeys) Create(ctx context.Context, name string, scopes []string, expiresAt *time.Time) (secret string, key APIKey, err error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", APIKey{}, errors.New("api key: a name is required")
	}
	if len(scopes) == 0 {
		return "", APIKey{}, errors.New("api key: at least one scope is required")
	}
	seen := map[string]bool{}
	var clean []string
	for _, sc := range scopes {
		sc = strings.TrimSpace(sc)
		if grants, retired := legacyGrants[sc]; retired {
			return "", APIKey{}, fmt.Errorf("api key: scope %q is retired: give %s (and %s or %s only to user management)",
				sc, strings.Join(grants, ", "), ScopeEventsUserCreated, ScopeEventsInternalLogin)
		}
		if !slices.Contains(Scopes, sc) {
			return "", APIKey{}, fmt.Errorf("api key: unknown scope %q (want some of %s)", sc, strings.Join(Scopes, ", "))
		}
		if !seen[sc] {
			seen[sc] = true
			clean = append(clean, sc)
		}
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", APIKey{}, fmt.Errorf("api key: random: %w", err)
	}
	secret = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(buf)
	now := s.now().UTC()
	key = APIKey{
		ID:         uuid.NewString(),
		Name:       name,
		Prefix:     secret[:len(APIKeyPrefix)+6],
		Hash:       hashKey(secret),
		ScopesText: strings.Join(clean, " "),
		CreatedAt:  now,
	}
	if expiresAt != nil {
		t := expiresAt.UTC()
		key.ExpiresAt = &t
	}
	row := &store.APIKey{ID: key.ID, Name: key.Name, Prefix: key.Prefix, Hash: key.Hash, Scopes: key.ScopesText,
		CreatedAt: key.CreatedAt, ExpiresAt: key.ExpiresAt}
	if err := s.q.APIKeyInsert(ctx, row); err != nil {
		return "", APIKey{}, fmt.Errorf("api key: store: %w", err)
	}
	return secret, key, nil
}

// Revoke revokes the key with id; it reports whether a live key was revoked.
func (s *APIKeys) Revoke(ctx context.Context, id string) (bool, error) {
	revoked, err := s.q.APIKeyRevoke(ctx, &store.APIKeyRevokeParams{ID: id, At: s.now().UTC()})
	if err != nil {
		return false, fmt.Errorf("api key: %w", err)
	}
	return revoked, nil
}

// List lists every key, newest first.
func (s *APIKeys) List(ctx context.Context) ([]APIKey, error) {
	rows, err := s.q.APIKeyList(ctx)
	if err != nil {
		return nil, fmt.Errorf("api key: %w", err)
	}
	keys := make([]APIKey, len(rows))
	for i := range rows {
		keys[i] = apiKeyFromRow(&rows[i])
	}
	return keys, nil
}

// lastUsedEvery is how stale last_used_at may get: it is written at most
// this often per key, not on every request.
const lastUsedEvery = time.Minute

// Verify returns the live key whose secret is raw: 401 *Error when there is
// none, or it is revoked or expired.
func (s *APIKeys) Verify(ctx context.Context, raw string) (APIKey, error) {
	row, err := s.q.APIKeyGetByHash(ctx, hashKey(raw))
	if errors.Is(err, store.ErrNotFound) {
		return APIKey{}, unauthorized("the API key is not valid", "invalid_token")
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("api key: look up: %w", err)
	}
	k := apiKeyFromRow(row)
	now := s.now().UTC()
	if k.RevokedAt != nil {
		return APIKey{}, unauthorized("the API key has been revoked", "invalid_token")
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return APIKey{}, unauthorized("the API key has expired", "invalid_token")
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedEvery {
		// Best effort: a failure to record use never refuses the key.
		_ = s.q.APIKeySetLastUsed(ctx, &store.APIKeySetLastUsedParams{ID: k.ID, At: now})
		k.LastUsedAt = &now
	}
	return k, nil
}
