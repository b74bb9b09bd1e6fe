package storetest

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
)

// inTx runs f in a transaction with a batch, flushed before the commit.
func inTx(t *testing.T, db *bun.DB, f func(q *store.Queries, b *store.Batch)) {
	t.Helper()
	ctx := context.Background()
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		b := store.NewBatch(tx)
		f(store.NewQueries(tx), b)
		return b.Flush(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func exerciseNotifications(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	seedDoctor(t, db, "d1", "x1", "", at)
	seedDoctor(t, db, "d2", "x2", "", at)
	exec(t, db, `INSERT INTO doctor_preferences (doctor_id, channels, quiet_start, quiet_end, digest, fallback_order, updated_at)
VALUES ('d1', '{"results":["in_app"]}', '22:00', '07:00', 'daily', '["sms"]', ?)`, at)
	exec(t, db, `INSERT INTO delegations (id, doctor_id, covering_doctor_id, starts_at, ends_at, created_at, status) VALUES ('g1', 'd2', 'd1', ?, ?, ?, 'accepted')`,
		at.Add(-time.Hour), at.Add(time.Hour), at)

	note := func(id, doctor, key string, version int, onBehalfOf *string) *store.Notification {
		return &store.Notification{ID: id, DoctorID: doctor, DedupKey: key, Type: templates.TypeResultAvailable,
			Category: domain.CategoryResults, Priority: domain.PriorityNormal, Title: "t", Body: "b", Data: map[string]any{"a": "b"},
			CheckupID: ptr("c1"), ResultVersion: &version, SourceEventID: "ev", OnBehalfOf: onBehalfOf, State: domain.StateActive,
			SendAt: at, CreatedAt: at}
	}
	// Version 1 for d1 and a copy for d2 (d1 covers), then version 2 for d1.
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		for _, n := range []*store.Notification{note("n1", "d1", "c/1|to:d1", 1, nil), note("n1c", "d1", "c/1|to:d1|for:d2", 1, ptr("d2")),
			note("n2", "d2", "c/1|to:d2", 1, nil)} {
			if err := b.NotificationInsert(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.NotificationLockDoctors(ctx, []string{"d1", "d2"}); err != nil {
			t.Fatal(err)
		}
		if err := b.DeliveryInsertMany(ctx, []store.Delivery{
			{ID: "n1-app", NotificationID: "n1", Channel: domain.ChannelInApp, Status: domain.DeliveryQueued, SendAt: at, CreatedAt: at, UpdatedAt: at},
			{ID: "n1-sms", NotificationID: "n1", Channel: domain.ChannelSMS, Status: domain.DeliveryQueued, SendAt: at, CreatedAt: at, UpdatedAt: at},
		}); err != nil {
			t.Fatal(err)
		}
	})
	if seqs := []int64{scalar[int64](t, db, `SELECT seq FROM notifications WHERE id = 'n1'`), scalar[int64](t, db, `SELECT seq FROM notifications WHERE id = 'n1c'`),
		scalar[int64](t, db, `SELECT seq FROM notifications WHERE id = 'n2'`)}; !slices.Equal(seqs, []int64{1, 2, 1}) {
		t.Fatalf("sequence numbers %v, want each doctor's own 1, 2, ...", seqs)
	}
	if n := scalar[int64](t, db, `SELECT notification_seq FROM doctors WHERE id = 'd1'`); n != 2 {
		t.Fatalf("d1's sequence %d", n)
	}
	got, err := q.NotificationGet(ctx, "n1c")
	if err != nil || got.Seq != 2 || got.OnBehalfOf == nil || *got.OnBehalfOf != "d2" || got.Data["a"] != "b" || *got.ResultVersion != 1 || *got.CheckupID != "c1" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if chs, err := q.DeliveryListChannels(ctx, "n1"); err != nil || len(chs) != 2 {
		t.Fatalf("deliveries inserted: %v %v", chs, err)
	}
	if ok, err := q.NotificationExistsByDedupKey(ctx, "c/1|to:d1"); err != nil || !ok {
		t.Fatalf("exists: %v %v", ok, err)
	}
	if ok, err := q.NotificationExistsByDedupKey(ctx, "c/1|to:nobody"); err != nil || ok {
		t.Fatalf("exists, unknown key: %v %v", ok, err)
	}
	if found, err := q.NotificationListExistingDedupKeys(ctx, []string{"c/1|to:nobody", "c/1|to:d1"}); err != nil ||
		len(found) != 1 || !found["c/1|to:d1"] {
		t.Fatalf("existing dedup keys: %v %v, want c/1|to:d1 only", found, err)
	}
	if found, err := q.NotificationListExistingDedupKeys(ctx, nil); err != nil || len(found) != 0 {
		t.Fatalf("no keys: %v %v", found, err)
	}

	// Recipients: x1 is known, prefers in-app, covers for nobody (has_cover
	// is about who covers for them) and holds c/1's notification; x2 has
	// someone covering; x9 does not exist.
	rs, err := q.NotificationListRecipients(ctx, &store.NotificationListRecipientsParams{Now: at, Wants: []store.NotificationWant{
		{ExternalID: "x1", DedupPrefix: "c/1|to:"}, {ExternalID: "x2", DedupPrefix: "c/2|to:"}, {ExternalID: "x9", DedupPrefix: "c/1|to:"}}})
	if err != nil || len(rs) != 2 {
		t.Fatalf("recipients: %+v %v", rs, err)
	}
	slices.SortFunc(rs, func(a, b store.NotificationRecipient) int { return cmp.Compare(a.ExternalID, b.ExternalID) })
	r1, r2 := rs[0], rs[1]
	if r1.ExternalID != "x1" || r1.DedupPrefix != "c/1|to:" || r1.Doctor.ID != "d1" || r1.Doctor.Name != "Dr d1" || !r1.Doctor.Active ||
		r1.Doctor.TimeZone != "UTC" || !r1.Channels.Valid || r1.Channels.String == "" || r1.QuietStart.String != "22:00" ||
		r1.Digest.String != "daily" || !r1.Fallback.Valid || r1.HasCover || !r1.Notified {
		t.Fatalf("recipient x1: %+v", r1)
	}
	if r2.Doctor.ID != "d2" || r2.Channels.Valid || !r2.HasCover || r2.Notified {
		t.Fatalf("recipient x2: %+v", r2)
	}
	if rs, err := q.NotificationListRecipients(ctx, &store.NotificationListRecipientsParams{Now: at.Add(2 * time.Hour),
		Wants: []store.NotificationWant{{ExternalID: "x2", DedupPrefix: "c/1|to:"}}}); err != nil || len(rs) != 1 || rs[0].HasCover || !rs[0].Notified {
		t.Fatalf("recipient x2 after the cover ended: %+v %v", rs, err)
	}

	holders, err := q.NotificationListHolders(ctx, "c1")
	if err != nil || len(holders) != 3 || holders[0].DoctorID != "d1" || holders[2].DoctorID != "d2" {
		t.Fatalf("holders: %+v %v", holders, err)
	}
	docs, err := q.DoctorListByIDs(ctx, []string{"d2", "d1", "nope"})
	if err != nil || len(docs) != 2 {
		t.Fatalf("doctors by ids: %+v %v", docs, err)
	}

	// Version 2 supersedes version 1 for d1 and its copy; d2 gets no
	// version 2, so its notification is superseded pointing at nothing.
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		if err := b.NotificationInsert(ctx, note("n3", "d1", "c/2|to:d1", 2, nil)); err != nil {
			t.Fatal(err)
		}
		if err := b.NotificationSupersede(ctx, &store.NotificationSupersedeParams{CheckupID: "c1", Version: 2, Reason: "superseded by result version 2"}); err != nil {
			t.Fatal(err)
		}
	})
	for id, want := range map[string]string{"n1": "n3", "n1c": "", "n2": ""} {
		n, err := q.NotificationGet(ctx, id)
		if err != nil || n.State != domain.StateSuperseded || n.StateReason != "superseded by result version 2" ||
			(want == "") != (n.SupersededBy == nil) || (want != "" && *n.SupersededBy != want) {
			t.Fatalf("%s after supersede: %+v %v, want superseded by %q", id, n, err, want)
		}
	}
	if n, _ := q.NotificationGet(ctx, "n3"); n.State != domain.StateActive {
		t.Fatalf("the new version was superseded: %+v", n)
	}

	// Retraction spares the withdrawal notices.
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		notice := note("n4", "d2", "c/retracted|to:d2", 3, nil)
		notice.Type = templates.TypeResultRetracted
		if err := b.NotificationInsert(ctx, notice); err != nil {
			t.Fatal(err)
		}
		if err := b.NotificationRetract(ctx, &store.NotificationRetractParams{CheckupID: "c1", Reason: "result cancelled"}); err != nil {
			t.Fatal(err)
		}
	})
	if n, _ := q.NotificationGet(ctx, "n3"); n.State != domain.StateRetracted || n.StateReason != "result cancelled" {
		t.Fatalf("retracted: %+v", n)
	}
	if n, _ := q.NotificationGet(ctx, "n4"); n.State != domain.StateActive {
		t.Fatalf("the notice was retracted: %+v", n)
	}
	if n, _ := q.NotificationGet(ctx, "n2"); n.State != domain.StateSuperseded {
		t.Fatalf("a superseded notification was retracted: %+v", n)
	}
	if holders, err := q.NotificationListHolders(ctx, "c1"); err != nil || len(holders) != 0 {
		t.Fatalf("holders after the retraction: %+v %v", holders, err)
	}
	if _, err := q.NotificationGet(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
