package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseAPIKeys(t *testing.T, open Opener) {
	ctx := context.Background()
	q := store.NewQueries(open(t))
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	key := func(id, hash string, created time.Time) *store.APIKey {
		return &store.APIKey{ID: id, Name: "key " + id, Prefix: "rfdk_" + id, Hash: hash,
			Scopes: "events:checkup doctors:read", CreatedAt: created}
	}

	if _, err := q.APIKeyGetByHash(ctx, "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get by unknown hash: %v, want ErrNotFound", err)
	}
	older, newer := key("k1", "h1", at), key("k2", "h2", at.Add(time.Hour))
	expires := at.Add(24 * time.Hour)
	newer.ExpiresAt = &expires
	for _, k := range []*store.APIKey{older, newer} {
		if err := q.APIKeyInsert(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.APIKeyInsert(ctx, key("k3", "h1", at)); err == nil {
		t.Fatal("a second key with the same hash was stored")
	}

	got, err := q.APIKeyGetByHash(ctx, "h2")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "k2" || got.Scopes != newer.Scopes || !got.CreatedAt.Equal(newer.CreatedAt) ||
		got.ExpiresAt == nil || !got.ExpiresAt.Equal(expires) || got.RevokedAt != nil || got.LastUsedAt != nil {
		t.Fatalf("get by hash: %+v", got)
	}

	list, err := q.APIKeyList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "k2" || list[1].ID != "k1" {
		t.Fatalf("list: %+v, want k2 then k1 (newest first)", list)
	}

	used := at.Add(2 * time.Hour)
	if err := q.APIKeySetLastUsed(ctx, &store.APIKeySetLastUsedParams{ID: "k1", At: used}); err != nil {
		t.Fatal(err)
	}
	if got, err := q.APIKeyGetByHash(ctx, "h1"); err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
		t.Fatalf("last used: %+v %v", got, err)
	}

	revoked, err := q.APIKeyRevoke(ctx, &store.APIKeyRevokeParams{ID: "k1", At: used})
	if err != nil || !revoked {
		t.Fatalf("revoke: %v %v", revoked, err)
	}
	if again, err := q.APIKeyRevoke(ctx, &store.APIKeyRevokeParams{ID: "k1", At: used.Add(time.Hour)}); err != nil || again {
		t.Fatalf("second revoke: %v %v, want false: the key was not live", again, err)
	}
	if got, err := q.APIKeyGetByHash(ctx, "h1"); err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(used) {
		t.Fatalf("revoked at: %+v %v", got, err)
	}
	if revoked, err := q.APIKeyRevoke(ctx, &store.APIKeyRevokeParams{ID: "nope", At: used}); err != nil || revoked {
		t.Fatalf("revoke unknown: %v %v", revoked, err)
	}
}
