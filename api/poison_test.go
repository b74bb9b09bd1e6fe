package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/router"
)

// The admin poison operations: list and get need poison:read, replay and
// discard poison:write; payloads are masked unless revealed (audited);
// replays and discards are audited with the API key.
func TestAdminPoison(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		payload, err := contracts.FS.ReadFile(contracts.CheckupEventExample)
		if err != nil {
			t.Fatal(err)
		}
		f.env.EnsureTopics(t, f.env.Config.TopicCheckupEvents)
		svc := poison.New(f.env.DB, f.env.Outbox, nil)
		for _, id := range []string{"evt-a", "evt-b"} {
			msg := message.NewMessage(id, payload)
			msg.Metadata.Set(middleware.ReasonForPoisonedKey, "permanent: checkup event: /result/version: required")
			msg.Metadata.Set(middleware.PoisonedTopicKey, f.env.Config.TopicCheckupEvents)
			msg.Metadata.Set(middleware.PoisonedHandlerKey, "checkup-events")
			msg.Metadata.Set(router.PoisonClassKey, poison.ClassPermanent)
			if err := f.env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return svc.Store(ctx, tx, msg) }); err != nil {
				t.Fatal(err)
			}
		}
		reader := f.apiKey("ops dashboard", auth.ScopePoisonRead)
		writer := f.apiKey("ops on call", auth.ScopePoisonRead, auth.ScopePoisonWrite)

		var list struct {
			Items     []api.PoisonMessage `json:"items"`
			NextAfter string              `json:"next_after"`
		}
		r := f.do(http.MethodGet, "/v1/admin/poison?state=pending&reason=permanent&limit=1", reader, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		r.json(t, &list)
		if len(list.Items) != 1 || list.NextAfter == "" || list.Items[0].Payload != "" {
			t.Fatalf("list page 1: %s", r.body)
		}
		first := list.Items[0].ID
		r = f.do(http.MethodGet, "/v1/admin/poison?state=pending&limit=1&after="+list.NextAfter, reader, nil)
		r.json(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID == first {
			t.Fatalf("list page 2: %s", r.body)
		}
		second := list.Items[0].ID
		f.do(http.MethodGet, "/v1/admin/poison?state=bogus", reader, nil).problem(t, http.StatusUnprocessableEntity)
		f.do(http.MethodGet, "/v1/admin/poison", "", nil).problem(t, http.StatusUnauthorized)

		var one api.PoisonMessage
		r = f.do(http.MethodGet, "/v1/admin/poison/"+first, reader, nil)
		r.json(t, &one)
		if r.status != http.StatusOK || !one.PayloadMasked || strings.Contains(one.Payload, "Somchai") || !strings.Contains(one.Payload, "CHK-2026-0004512") {
			t.Fatalf("get: %d %s", r.status, r.body)
		}
		r = f.do(http.MethodGet, "/v1/admin/poison/"+first+"?reveal=true", reader, nil)
		r.json(t, &one)
		if one.PayloadMasked || !strings.Contains(one.Payload, "Somchai") {
			t.Fatalf("get revealed: %s", r.body)
		}
		f.do(http.MethodGet, "/v1/admin/poison/nope", reader, nil).problem(t, http.StatusNotFound)

		f.do(http.MethodPost, "/v1/admin/poison/replay", reader, map[string]any{"ids": []string{first}}).problem(t, http.StatusForbidden)
		f.do(http.MethodPost, "/v1/admin/poison/replay", writer, map[string]any{"all": true}).problem(t, http.StatusUnprocessableEntity)
		var outcomes struct {
			Outcomes []poison.Outcome `json:"outcomes"`
		}
		r = f.do(http.MethodPost, "/v1/admin/poison/replay", writer, map[string]any{"ids": []string{first}, "reason": "fixed upstream"})
		r.json(t, &outcomes)
		if r.status != http.StatusOK || len(outcomes.Outcomes) != 1 || outcomes.Outcomes[0].Result != poison.ResultReplayed {
			t.Fatalf("replay: %d %s", r.status, r.body)
		}
		f.do(http.MethodPost, "/v1/admin/poison/discard", writer, map[string]any{"ids": []string{second}, "reason": ""}).problem(t, http.StatusUnprocessableEntity)
		r = f.do(http.MethodPost, "/v1/admin/poison/discard", writer, map[string]any{"ids": []string{second}, "reason": "test traffic"})
		r.json(t, &outcomes)
		if r.status != http.StatusOK || outcomes.Outcomes[0].Result != poison.ResultDiscarded {
			t.Fatalf("discard: %d %s", r.status, r.body)
		}

		var audits []struct {
			Action    string `bun:"action"`
			ActorType string `bun:"actor_type"`
		}
		if err := f.env.DB.NewRaw("SELECT action, actor_type FROM audit_log WHERE object_type = 'poison_message' ORDER BY id").Scan(ctx, &audits); err != nil {
			t.Fatal(err)
		}
		if len(audits) != 3 || audits[0].Action != "poison.reveal" || audits[1].Action != "poison.replay" || audits[2].Action != "poison.discard" || audits[2].ActorType != "api_key" {
			t.Fatalf("audit = %+v", audits)
		}
	})
}
