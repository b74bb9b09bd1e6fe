package storetest

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exercisePoisonMessages(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	upsert := func(id, messageID, topic, class, reason string, at time.Time) {
		t.Helper()
		if err := q.PoisonMessageUpsert(ctx, &store.PoisonMessageUpsertParams{
			ID: id, MessageID: messageID, Topic: topic, Handler: "h", Class: class, Reason: reason, Attempts: 3,
			Payload: "{}", PayloadEncoding: "utf8", Metadata: map[string]string{"ce_id": messageID}, At: at, State: "pending",
		}); err != nil {
			t.Fatal(err)
		}
	}
	upsert("p1", "m1", "checkups", "permanent", "unknown field 50%_off", t0)
	upsert("p2", "m2", "orders", "exhausted", "timeout", t0.Add(time.Minute))
	upsert("p3", "m3", "checkups", "exhausted", "timeout", t0.Add(2*time.Minute))
	upsert("p4", "m4", "checkups", "permanent", "bad", t0.Add(2*time.Minute))

	// The same message poisoned again: one row, counted twice, with the
	// new poisoning's details; its id and first sighting stay.
	if err := q.PoisonMessageUpsert(ctx, &store.PoisonMessageUpsertParams{
		ID: "ignored", MessageID: "m1", Topic: "checkups", Handler: "h", Class: "exhausted", Reason: "again", Attempts: 5,
		Payload: "AAE=", PayloadEncoding: "base64", Metadata: map[string]string{"ce_id": "m1", "x": "y"}, At: t0.Add(time.Hour), State: "pending",
	}); err != nil {
		t.Fatal(err)
	}
	m, err := q.PoisonMessageGet(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if m.TimesPoisoned != 2 || m.Class != "exhausted" || m.Reason != "again" || m.Attempts != 5 || m.Payload != "AAE=" ||
		m.PayloadEncoding != "base64" || m.Metadata["x"] != "y" || !m.FirstSeenAt.Equal(t0) || !m.LastSeenAt.Equal(t0.Add(time.Hour)) ||
		m.State != "pending" || m.StateChangedAt != nil {
		t.Fatalf("poisoned twice: %+v", m)
	}
	if _, err := q.PoisonMessageGet(ctx, "ignored"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	head, err := q.PoisonMessageGetHead(ctx, "p2")
	if err != nil || head.ID != "p2" || head.Topic != "orders" || head.Handler != "h" || head.State != "pending" || head.Payload != "" || head.Reason != "" {
		t.Fatalf("head: %+v %v, want only id, topic, handler and state", head, err)
	}
	if _, err := q.PoisonMessageGetHead(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("head of unknown: %v", err)
	}

	ids := func(p store.PoisonMessageListParams) []string {
		t.Helper()
		rows, err := q.PoisonMessageList(ctx, &p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	for name, c := range map[string]struct {
		params store.PoisonMessageListParams
		want   []string
	}{
		"all":          {store.PoisonMessageListParams{}, []string{"p1", "p2", "p3", "p4"}},
		"topic":        {store.PoisonMessageListParams{Topic: "checkups"}, []string{"p1", "p3", "p4"}},
		"class":        {store.PoisonMessageListParams{Class: "permanent"}, []string{"p4"}},
		"reason":       {store.PoisonMessageListParams{ReasonContains: "time"}, []string{"p2", "p3"}},
		"reason, like": {store.PoisonMessageListParams{ReasonContains: "%"}, []string{"p1", "p2", "p3", "p4"}},
		"since":        {store.PoisonMessageListParams{Since: t0.Add(90 * time.Second)}, []string{"p1", "p3", "p4"}},
		"limit":        {store.PoisonMessageListParams{Limit: 2}, []string{"p1", "p2"}},
		"after": {store.PoisonMessageListParams{After: &store.PoisonMessagePosition{FirstSeenAt: t0.Add(2 * time.Minute), ID: "p3"}},
			[]string{"p4"}},
	} {
		if got := ids(c.params); !slices.Equal(got, c.want) {
			t.Fatalf("%s: %v, want %v", name, got, c.want)
		}
	}
	pos, err := q.PoisonMessageGetPosition(ctx, "p2")
	if err != nil || pos.ID != "p2" || !pos.FirstSeenAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("position: %+v %v", pos, err)
	}
	if got := ids(store.PoisonMessageListParams{After: pos}); !slices.Equal(got, []string{"p3", "p4"}) {
		t.Fatalf("after p2: %v", got)
	}
	if _, err := q.PoisonMessageGetPosition(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("position of unknown: %v", err)
	}

	moved, err := q.PoisonMessageMove(ctx, &store.PoisonMessageMoveParams{ID: "p3", From: "pending", To: "discarded", Reason: "dup", By: "operator:ann", At: t0.Add(time.Hour)})
	if err != nil || !moved {
		t.Fatalf("move: %v %v", moved, err)
	}
	if moved, err := q.PoisonMessageMove(ctx, &store.PoisonMessageMoveParams{ID: "p3", From: "pending", To: "replayed", At: t0}); err != nil || moved {
		t.Fatalf("move a message no longer pending: %v %v", moved, err)
	}
	if m, err := q.PoisonMessageGet(ctx, "p3"); err != nil || m.State != "discarded" || m.StateReason != "dup" || m.StateChangedBy != "operator:ann" ||
		m.StateChangedAt == nil || !m.StateChangedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("moved: %+v %v", m, err)
	}
	if got := ids(store.PoisonMessageListParams{State: "pending"}); !slices.Equal(got, []string{"p1", "p2", "p4"}) {
		t.Fatalf("pending: %v", got)
	}
	pending, err := q.PoisonMessageListIDs(ctx, &store.PoisonMessageListIDsParams{State: "pending", Topic: "checkups"})
	if err != nil || !slices.Equal(pending, []string{"p1", "p4"}) {
		t.Fatalf("pending ids of checkups: %v %v", pending, err)
	}

	counts, err := q.PoisonMessageCountByTopicClass(ctx, "pending")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(counts, func(a, b store.PoisonMessageCount) int {
		if a.Topic != b.Topic {
			return cmp.Compare(a.Topic, b.Topic)
		}
		return cmp.Compare(a.Class, b.Class)
	})
	want := []store.PoisonMessageCount{{Topic: "checkups", Class: "exhausted", N: 1}, {Topic: "checkups", Class: "permanent", N: 1}, {Topic: "orders", Class: "exhausted", N: 1}}
	if !slices.Equal(counts, want) {
		t.Fatalf("counts: %+v, want %+v", counts, want)
	}
	oldest, ok, err := q.PoisonMessageGetOldestSeen(ctx, "pending")
	if err != nil || !ok || !oldest.Equal(t0) {
		t.Fatalf("oldest: %v %v %v", oldest, ok, err)
	}
	if _, ok, err := q.PoisonMessageGetOldestSeen(ctx, "replayed"); err != nil || ok {
		t.Fatalf("oldest of none: %v %v", ok, err)
	}
}
