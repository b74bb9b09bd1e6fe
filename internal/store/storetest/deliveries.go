package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseDeliveries(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	seedDoctor(t, db, "d1", "x1", "", at)
	seedNotification(t, db, "n1", "d1", "key:k1", at)
	seedNotification(t, db, "n2", "d1", "event-2", at)

	if _, err := q.DeliveryGet(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	if _, err := q.DeliveryGetNotificationID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("notification id of unknown: %v, want ErrNotFound", err)
	}
	for _, d := range []*store.Delivery{
		{ID: "e1", NotificationID: "n1", Channel: domain.ChannelEmail, Status: domain.DeliveryQueued, SendAt: at, CreatedAt: at, UpdatedAt: at},
		{ID: "s1", NotificationID: "n1", Channel: domain.ChannelSMS, Status: domain.DeliveryQueued, SendAt: at, CreatedAt: at, UpdatedAt: at},
		{ID: "p2", NotificationID: "n2", Channel: domain.ChannelPush, Status: domain.DeliverySending, Attempt: 1, SendAt: at, CreatedAt: at, UpdatedAt: at},
	} {
		if err := q.DeliveryInsert(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := q.DeliveryGet(ctx, "e1")
	if err != nil || got.NotificationID != "n1" || got.Channel != domain.ChannelEmail || got.Status != domain.DeliveryQueued ||
		!got.SendAt.Equal(at) || got.NextAttemptAt != nil || got.Attempt != 0 {
		t.Fatalf("get: %+v %v", got, err)
	}
	if id, err := q.DeliveryGetNotificationID(ctx, "p2"); err != nil || id != "n2" {
		t.Fatalf("notification id: %q %v", id, err)
	}
	if got, err := q.DeliveryGetForSource(ctx, &store.DeliveryGetForSourceParams{ID: "e1", SourceEventID: "key:k1"}); err != nil || got.ID != "e1" {
		t.Fatalf("get for its source: %+v %v", got, err)
	}
	if _, err := q.DeliveryGetForSource(ctx, &store.DeliveryGetForSourceParams{ID: "p2", SourceEventID: "key:k1"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get for another source: %v, want ErrNotFound", err)
	}
	chs, err := q.DeliveryListChannels(ctx, "n1")
	slices.Sort(chs)
	if err != nil || !slices.Equal(chs, []string{"email", "sms"}) {
		t.Fatalf("channels: %v %v", chs, err)
	}

	// Deferred and waiting deliveries become due; only queued ones move.
	later := at.Add(time.Hour)
	if err := q.DeliveryDefer(ctx, &store.DeliveryDeferParams{ID: "e1", Due: later, Now: at}); err != nil {
		t.Fatal(err)
	}
	if err := q.DeliveryWait(ctx, &store.DeliveryWaitParams{ID: "s1", Next: at.Add(time.Minute), ReasonCode: "sms_cap", StatusReason: "capped", Now: at}); err != nil {
		t.Fatal(err)
	}
	if err := q.DeliveryDefer(ctx, &store.DeliveryDeferParams{ID: "p2", Due: at, Now: at}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.DeliveryGet(ctx, "p2"); got.NextAttemptAt != nil {
		t.Fatalf("a sending delivery was deferred: %+v", got)
	}
	if got, _ := q.DeliveryGet(ctx, "s1"); got.ReasonCode != "sms_cap" || got.StatusReason != "capped" || got.NextAttemptAt == nil {
		t.Fatalf("wait: %+v", got)
	}
	due, err := q.DeliveryListDue(ctx, &store.DeliveryListDueParams{Now: later, Limit: 10})
	if err != nil || len(due) != 2 || due[0].ID != "s1" || due[1].ID != "e1" {
		t.Fatalf("due: %+v %v, want s1 then e1", due, err)
	}
	if due, err := q.DeliveryListDue(ctx, &store.DeliveryListDueParams{Now: later, Limit: 1}); err != nil || len(due) != 1 {
		t.Fatalf("due, limit 1: %+v %v", due, err)
	}
	if due, err := q.DeliveryListDue(ctx, &store.DeliveryListDueParams{Now: at, Limit: 10}); err != nil || len(due) != 0 {
		t.Fatalf("due before their time: %+v %v", due, err)
	}
	if err := q.DeliveryClearDue(ctx, &store.DeliveryClearDueParams{ID: "s1", Now: later}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.DeliveryGet(ctx, "s1"); got.NextAttemptAt != nil || !got.UpdatedAt.Equal(later) {
		t.Fatalf("clear due: %+v", got)
	}

	// Claim, record the provider, retry, advance.
	claimed, err := q.DeliveryClaim(ctx, &store.DeliveryClaimParams{ID: "e1", Attempt: 1, Now: later})
	if err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if got, _ := q.DeliveryGet(ctx, "e1"); got.Status != domain.DeliverySending || got.Attempt != 1 || got.NextAttemptAt != nil {
		t.Fatalf("claimed: %+v", got)
	}
	if err := q.DeliverySetProvider(ctx, &store.DeliverySetProviderParams{ID: "e1", Provider: "smtp", ProviderMessageID: "m-1"}); err != nil {
		t.Fatal(err)
	}
	next := later.Add(time.Minute)
	if err := q.DeliveryScheduleRetry(ctx, &store.DeliveryScheduleRetryParams{ID: "e1", ReasonCode: "timeout", StatusReason: "timed out", Next: next, Now: later}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.DeliveryGet(ctx, "e1"); got.Status != domain.DeliveryQueued || got.ReasonCode != "timeout" || got.NextAttemptAt == nil ||
		!got.NextAttemptAt.Equal(next) || got.Provider != "smtp" || got.ProviderMessageID != "m-1" {
		t.Fatalf("retry: %+v", got)
	}
	moved, err := q.DeliveryAdvance(ctx, &store.DeliveryAdvanceParams{ID: "e1", Status: domain.DeliveryFailed,
		From: []string{domain.DeliveryQueued, domain.DeliverySending}, ReasonCode: "provider_rejected", StatusReason: "rejected", Now: next})
	if err != nil || !moved {
		t.Fatalf("advance: %v %v", moved, err)
	}
	if got, _ := q.DeliveryGet(ctx, "e1"); got.Status != domain.DeliveryFailed || got.ReasonCode != "provider_rejected" || got.NextAttemptAt != nil {
		t.Fatalf("advanced: %+v", got)
	}
	if moved, err := q.DeliveryAdvance(ctx, &store.DeliveryAdvanceParams{ID: "e1", Status: domain.DeliverySent,
		From: []string{domain.DeliveryQueued, domain.DeliverySending}, Now: next}); err != nil || moved {
		t.Fatalf("advance from a status not listed: %v %v", moved, err)
	}
	if claimed, err := q.DeliveryClaim(ctx, &store.DeliveryClaimParams{ID: "e1", Attempt: 2, Now: next}); err != nil || claimed {
		t.Fatalf("claim of a failed delivery: %v %v", claimed, err)
	}

	// Stuck: p2 has been sending since at.
	n, err := q.DeliverySweepStuck(ctx, &store.DeliverySweepStuckParams{Cutoff: at.Add(time.Second), Now: next, ReasonCode: "stuck_retried", StatusReason: "stuck"})
	if err != nil || n != 1 {
		t.Fatalf("sweep stuck: %d %v", n, err)
	}
	if got, _ := q.DeliveryGet(ctx, "p2"); got.Status != domain.DeliveryQueued || got.ReasonCode != "stuck_retried" || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(next) {
		t.Fatalf("swept: %+v", got)
	}
	if n, err := q.DeliverySweepStuck(ctx, &store.DeliverySweepStuckParams{Cutoff: next.Add(time.Hour), Now: next}); err != nil || n != 0 {
		t.Fatalf("sweep again: %d %v", n, err)
	}

	// Attempts.
	if list, err := q.DeliveryAttemptList(ctx, "e1"); err != nil || len(list) != 0 {
		t.Fatalf("no attempts: %+v %v", list, err)
	}
	for _, a := range []*store.DeliveryAttempt{
		{DeliveryID: "e1", Attempt: 2, Provider: "smtp", Outcome: "permanent", ReasonCode: "provider_rejected", Error: "rejected", StartedAt: next, FinishedAt: next},
		{DeliveryID: "e1", Attempt: 1, Provider: "smtp", ProviderMessageID: "m-1", Outcome: "transient", ReasonCode: "timeout", StartedAt: later, FinishedAt: later.Add(time.Second)},
	} {
		if err := q.DeliveryAttemptInsert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	list, err := q.DeliveryAttemptList(ctx, "e1")
	if err != nil || len(list) != 2 || list[0].Attempt != 1 || list[0].ProviderMessageID != "m-1" || list[0].Outcome != "transient" ||
		!list[0].FinishedAt.Equal(later.Add(time.Second)) || list[1].Attempt != 2 || list[1].ReasonCode != "provider_rejected" || list[1].Error != "" {
		t.Fatalf("attempts: %+v %v (the error text is not read)", list, err)
	}
	if got := scalar[string](t, db, `SELECT error FROM delivery_attempts WHERE delivery_id = 'e1' AND attempt = 2`); got != "rejected" {
		t.Fatalf("stored error %q", got)
	}

	if doc, err := q.DoctorGetByID(ctx, "d1"); err != nil || doc.ExternalUserID != "x1" || !doc.Active {
		t.Fatalf("doctor: %+v %v", doc, err)
	}
	if _, err := q.DoctorGetByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown doctor: %v, want ErrNotFound", err)
	}
	if nt, err := q.NotificationGet(ctx, "n2"); err != nil || nt.DoctorID != "d1" || nt.SourceEventID != "event-2" || nt.State != domain.StateActive {
		t.Fatalf("notification: %+v %v", nt, err)
	}
	if _, err := q.NotificationGet(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown notification: %v, want ErrNotFound", err)
	}
	exerciseDeliveryBatches(t, db, at)
}

// exerciseDeliveryBatches is the dispatcher's batched statements: the reads
// of a claim batch, the claim of several deliveries in one statement, and
// the record of several attempts.
func exerciseDeliveryBatches(t *testing.T, db bun.IDB, at time.Time) {
	ctx := context.Background()
	q := store.NewQueries(db)
	seedDoctor(t, db, "d2", "x2", "", at)
	seedNotification(t, db, "n3", "d2", "event-3", at)
	for _, d := range []*store.Delivery{
		{ID: "b1", NotificationID: "n3", Channel: domain.ChannelInApp, Status: domain.DeliveryQueued, SendAt: at, CreatedAt: at, UpdatedAt: at},
		{ID: "b2", NotificationID: "n3", Channel: domain.ChannelEmail, Status: domain.DeliverySending, Attempt: 1, SendAt: at, CreatedAt: at, UpdatedAt: at},
		{ID: "b3", NotificationID: "n3", Channel: domain.ChannelWebhook, Status: domain.DeliveryDelivered, Attempt: 1, SendAt: at, CreatedAt: at, UpdatedAt: at},
	} {
		if err := q.DeliveryInsert(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	ds, err := q.DeliveryListByIDs(ctx, []string{"b1", "b3", "nope"})
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"b1", "b3"}) {
		t.Fatalf("deliveries by id: %v %v", ids, err)
	}
	if ds, err := q.DeliveryListByIDs(ctx, nil); err != nil || len(ds) != 0 {
		t.Fatalf("no ids: %+v %v", ds, err)
	}
	ns, err := q.NotificationListByIDs(ctx, []string{"n3", "n1", "nope"})
	if err != nil || len(ns) != 2 {
		t.Fatalf("notifications by id: %+v %v", ns, err)
	}
	for _, n := range ns {
		if (n.ID == "n3" && n.DoctorID != "d2") || (n.ID == "n1" && n.SourceEventID != "key:k1") {
			t.Fatalf("notification by id: %+v", n)
		}
	}

	// Queued and sending deliveries are claimed, each for its own attempt;
	// a final one is not, and an unknown id changes nothing.
	later := at.Add(time.Hour)
	claimed, err := q.DeliveryClaimMany(ctx, &store.DeliveryClaimManyParams{
		Attempts: map[string]int{"b1": 1, "b2": 2, "b3": 2, "nope": 1}, Now: later})
	slices.Sort(claimed)
	if err != nil || !slices.Equal(claimed, []string{"b1", "b2"}) {
		t.Fatalf("claim many: %v %v, want b1 and b2", claimed, err)
	}
	for id, attempt := range map[string]int{"b1": 1, "b2": 2} {
		if got, _ := q.DeliveryGet(ctx, id); got.Status != domain.DeliverySending || got.Attempt != attempt || !got.UpdatedAt.Equal(later) {
			t.Fatalf("claimed %s: %+v, want sending attempt %d", id, got, attempt)
		}
	}
	if got, _ := q.DeliveryGet(ctx, "b3"); got.Status != domain.DeliveryDelivered || got.Attempt != 1 {
		t.Fatalf("a delivered delivery was claimed: %+v", got)
	}
	if claimed, err := q.DeliveryClaimMany(ctx, &store.DeliveryClaimManyParams{Now: later}); err != nil || len(claimed) != 0 {
		t.Fatalf("claim none: %v %v", claimed, err)
	}

	// Finished as sent with the provider's id, once.
	from := []string{domain.DeliveryQueued, domain.DeliverySending}
	moved, err := q.DeliveryFinishSent(ctx, &store.DeliveryFinishSentParams{ID: "b2", Status: domain.DeliverySent, From: from,
		Provider: "smtp", ProviderMessageID: "m-b2", Now: later})
	if err != nil || !moved {
		t.Fatalf("finish sent: %v %v", moved, err)
	}
	if got, _ := q.DeliveryGet(ctx, "b2"); got.Status != domain.DeliverySent || got.Provider != "smtp" || got.ProviderMessageID != "m-b2" ||
		got.ReasonCode != "" || got.NextAttemptAt != nil {
		t.Fatalf("finished: %+v", got)
	}
	if moved, err := q.DeliveryFinishSent(ctx, &store.DeliveryFinishSentParams{ID: "b2", Status: domain.DeliverySent, From: from,
		Provider: "other", ProviderMessageID: "m-other", Now: later}); err != nil || moved {
		t.Fatalf("finish again: %v %v", moved, err)
	}
	if got, _ := q.DeliveryGet(ctx, "b2"); got.Provider != "smtp" || got.ProviderMessageID != "m-b2" {
		t.Fatalf("a second finish rewrote the provider: %+v", got)
	}

	// Several finished at once, each with its own message id; one not in a
	// From status stays as it is.
	seedNotification(t, db, "n4", "d2", "event-4", at)
	for _, d := range []*store.Delivery{
		{ID: "c1", NotificationID: "n4", Channel: domain.ChannelInApp, Status: domain.DeliverySending, Attempt: 1, SendAt: at, CreatedAt: at, UpdatedAt: at},
		{ID: "c2", NotificationID: "n4", Channel: domain.ChannelEmail, Status: domain.DeliverySending, Attempt: 1, SendAt: at, CreatedAt: at, UpdatedAt: at},
		{ID: "c3", NotificationID: "n4", Channel: domain.ChannelSMS, Status: domain.DeliveryFailed, Attempt: 1, SendAt: at, CreatedAt: at, UpdatedAt: at},
	} {
		if err := q.DeliveryInsert(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	finished, err := q.DeliveryFinishSentMany(ctx, &store.DeliveryFinishSentManyParams{Status: domain.DeliveryDelivered, From: from,
		Provider: "in_app", ProviderMessageIDs: map[string]string{"c1": "m-c1", "c2": "m-c2", "c3": "m-c3"}, Now: later})
	slices.Sort(finished)
	if err != nil || !slices.Equal(finished, []string{"c1", "c2"}) {
		t.Fatalf("finish many: %v %v, want c1 and c2", finished, err)
	}
	for id, want := range map[string]string{"c1": "m-c1", "c2": "m-c2"} {
		if got, _ := q.DeliveryGet(ctx, id); got.Status != domain.DeliveryDelivered || got.Provider != "in_app" || got.ProviderMessageID != want {
			t.Fatalf("finished %s: %+v", id, got)
		}
	}
	if got, _ := q.DeliveryGet(ctx, "c3"); got.Status != domain.DeliveryFailed || got.Provider != "" {
		t.Fatalf("a failed delivery was finished: %+v", got)
	}
	if none, err := q.DeliveryFinishSentMany(ctx, &store.DeliveryFinishSentManyParams{Status: domain.DeliveryDelivered, From: from, Now: later}); err != nil || len(none) != 0 {
		t.Fatalf("finish none: %v %v", none, err)
	}

	if err := q.DeliveryAttemptInsertMany(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.DeliveryAttemptInsertMany(ctx, []store.DeliveryAttempt{
		{DeliveryID: "b1", Attempt: 1, Provider: "in_app", ProviderMessageID: "n3", Outcome: "success", StartedAt: later, FinishedAt: later},
		{DeliveryID: "b2", Attempt: 2, Provider: "smtp", ProviderMessageID: "m-b2", Outcome: "success", StartedAt: later, FinishedAt: later},
	}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"b1": "in_app", "b2": "smtp"} {
		list, err := q.DeliveryAttemptList(ctx, id)
		if err != nil || len(list) != 1 || list[0].Provider != want || list[0].Outcome != "success" || !list[0].StartedAt.Equal(later) {
			t.Fatalf("attempts of %s: %+v %v", id, list, err)
		}
	}
}

func exerciseTargets(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	seedDoctor(t, db, "d1", "x1", "north", at)
	seedDoctor(t, db, "d2", "x2", "", at)
	exec(t, db, `INSERT INTO devices (token, doctor_id, created_at, updated_at) VALUES ('tb', 'd1', ?, ?), ('ta', 'd1', ?, ?), ('old', 'd1', ?, ?), ('other', 'd2', ?, ?)`,
		at.Add(time.Minute), at, at.Add(time.Minute), at, at, at, at, at)
	exec(t, db, `INSERT INTO webhook_endpoints (id, doctor_id, clinic, url, secret, previous_secret, created_at, updated_at) VALUES
('w1', 'd1', NULL, 'https://a', 's1', '', ?, ?), ('w2', NULL, 'north', 'https://b', 's2', 'p2', ?, ?), ('w3', NULL, '', 'https://c', 's3', '', ?, ?)`,
		at, at, at.Add(time.Minute), at, at, at)

	tokens, err := q.TargetListDeviceTokens(ctx, "d1")
	if err != nil || !slices.Equal(tokens, []string{"old", "ta", "tb"}) {
		t.Fatalf("tokens: %v %v", tokens, err)
	}
	if err := q.TargetDisableDevice(ctx, &store.TargetDisableDeviceParams{Token: "old", Reason: "gone", At: at}); err != nil {
		t.Fatal(err)
	}
	if tokens, err := q.TargetListDeviceTokens(ctx, "d1"); err != nil || !slices.Equal(tokens, []string{"ta", "tb"}) {
		t.Fatalf("tokens after disabling: %v %v", tokens, err)
	}
	if got := scalar[string](t, db, `SELECT disabled_reason FROM devices WHERE token = 'old'`); got != "gone" {
		t.Fatalf("disabled reason %q", got)
	}

	eps, err := q.TargetListWebhookEndpoints(ctx, "d1")
	if err != nil || len(eps) != 2 || eps[0].ID != "w1" || eps[1].ID != "w2" || eps[1].URL != "https://b" ||
		eps[1].Secret != "s2" || eps[1].PreviousSecret != "p2" {
		t.Fatalf("endpoints of d1 (its own, then its clinic's): %+v %v", eps, err)
	}
	if eps, err := q.TargetListWebhookEndpoints(ctx, "d2"); err != nil || len(eps) != 0 {
		t.Fatalf("a doctor of no clinic gets no clinic's endpoint: %+v %v", eps, err)
	}
	if err := q.TargetDisableWebhookEndpoint(ctx, &store.TargetDisableWebhookEndpointParams{ID: "w1", Reason: "410 Gone", At: at}); err != nil {
		t.Fatal(err)
	}
	if eps, err := q.TargetListWebhookEndpoints(ctx, "d1"); err != nil || len(eps) != 1 || eps[0].ID != "w2" {
		t.Fatalf("endpoints after disabling: %+v %v", eps, err)
	}
}
