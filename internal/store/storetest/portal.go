package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
)

// exercisePortalReads covers the statements of the doctor portal and the
// integrators' notification API: lists, details, read and acknowledge.
func exercisePortalReads(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	seedDoctor(t, db, "d1", "x1", "", at)
	seedDoctor(t, db, "d2", "x2", "", at)

	// d1: n1 (results), n2 (critical), n3 (orders, of order o1), in
	// sequence order, an hour apart; d2: m1 about checkup c1.
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		for i, n := range []*store.Notification{
			{ID: "n1", DoctorID: "d1", DedupKey: "k1", Type: templates.TypeResultAvailable, Category: domain.CategoryResults, Priority: domain.PriorityNormal},
			{ID: "n2", DoctorID: "d1", DedupKey: "k2", Type: templates.TypeCriticalResult, Category: domain.CategoryCriticalResults, Priority: domain.PriorityCritical},
			{ID: "n3", DoctorID: "d1", DedupKey: "k3", Type: templates.TypeOrderStatus, Category: domain.CategoryOrders, Priority: domain.PriorityNormal, OrderID: ptr("o1")},
			{ID: "m1", DoctorID: "d2", DedupKey: "k4", Type: templates.TypeResultAvailable, Category: domain.CategoryResults, Priority: domain.PriorityNormal, CheckupID: ptr("c1")},
		} {
			created := at.Add(time.Duration(i) * time.Hour)
			n.Title, n.Body, n.Data, n.SourceEventID, n.State, n.SendAt, n.CreatedAt = "t "+n.ID, "b", map[string]any{}, "api:key1", domain.StateActive, created, created
			if err := b.NotificationInsert(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.DeliveryInsertMany(ctx, []store.Delivery{
			{ID: "n2-sms", NotificationID: "n2", Channel: domain.ChannelSMS, Status: domain.DeliverySent, ReasonCode: "", SendAt: at, CreatedAt: at, UpdatedAt: at},
			{ID: "n2-app", NotificationID: "n2", Channel: domain.ChannelInApp, Status: domain.DeliveryDelivered, SendAt: at, CreatedAt: at, UpdatedAt: at},
			{ID: "n1-app", NotificationID: "n1", Channel: domain.ChannelInApp, Status: domain.DeliveryQueued, SendAt: at, CreatedAt: at, UpdatedAt: at},
		}); err != nil {
			t.Fatal(err)
		}
	})

	ids := func(ns []store.Notification) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.ID)
		}
		return out
	}
	list := func(p store.NotificationListForDoctorParams) []string {
		t.Helper()
		p.DoctorID = "d1"
		if p.Limit == 0 {
			p.Limit = 10
		}
		ns, err := q.NotificationListForDoctor(ctx, &p)
		if err != nil {
			t.Fatal(err)
		}
		return ids(ns)
	}
	if got := list(store.NotificationListForDoctorParams{}); !slices.Equal(got, []string{"n3", "n2", "n1"}) {
		t.Fatalf("list: %v, want newest first", got)
	}
	two := int64(2)
	for name, c := range map[string]struct {
		p    store.NotificationListForDoctorParams
		want []string
	}{
		"limit":    {store.NotificationListForDoctorParams{Limit: 2}, []string{"n3", "n2"}},
		"before":   {store.NotificationListForDoctorParams{Before: &two}, []string{"n1"}},
		"category": {store.NotificationListForDoctorParams{Category: "critical_results"}, []string{"n2"}},
		"priority": {store.NotificationListForDoctorParams{Priority: "normal"}, []string{"n3", "n1"}},
		"since":    {store.NotificationListForDoctorParams{Since: at.Add(time.Hour)}, []string{"n3", "n2"}},
	} {
		if got := list(c.p); !slices.Equal(got, c.want) {
			t.Fatalf("list by %s: %v, want %v", name, got, c.want)
		}
	}
	ns, _ := q.NotificationListForDoctor(ctx, &store.NotificationListForDoctorParams{DoctorID: "d1", Limit: 1})
	if n := ns[0]; n.Seq != 3 || n.Title != "t n3" || n.OrderID == nil || *n.OrderID != "o1" || n.Body != "" || !n.CreatedAt.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("summary columns: %+v", n)
	}

	if n, err := q.NotificationGetForDoctor(ctx, &store.NotificationGetForDoctorParams{ID: "n2", DoctorID: "d1"}); err != nil || n.Body != "b" || n.Seq != 2 {
		t.Fatalf("get own: %+v %v", n, err)
	}
	if _, err := q.NotificationGetForDoctor(ctx, &store.NotificationGetForDoctorParams{ID: "m1", DoctorID: "d1"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get another doctor's: %v, want ErrNotFound", err)
	}
	sent, err := q.NotificationListSent(ctx, []string{"n2", "m1", "nope"})
	if err != nil || len(sent) != 2 {
		t.Fatalf("sent: %+v %v", sent, err)
	}
	for _, n := range sent {
		if n.DoctorID == "" || n.SendAt.IsZero() || n.Title != "" {
			t.Fatalf("sent columns: %+v", n)
		}
	}
	if ds, err := q.DeliveryListStatuses(ctx, "n2"); err != nil || len(ds) != 2 || ds[0].Channel != domain.ChannelInApp ||
		ds[0].Status != domain.DeliveryDelivered || ds[1].Channel != domain.ChannelSMS || !ds[1].UpdatedAt.Equal(at) {
		t.Fatalf("delivery statuses: %+v %v", ds, err)
	}
	if ds, err := q.DeliveryListQueuedRefs(ctx, "n2"); err != nil || len(ds) != 2 || ds[0].ID != "n2-app" || ds[1].ID != "n2-sms" || ds[1].Status != domain.DeliverySent {
		t.Fatalf("queued refs: %+v %v", ds, err)
	}
	if page, err := q.NotificationListAfter(ctx, &store.NotificationListAfterParams{DoctorID: "d1", After: 1, Limit: 10}); err != nil || !slices.Equal(ids(page), []string{"n2", "n3"}) {
		t.Fatalf("after 1: %v %v", ids(page), err)
	}
	if page, err := q.NotificationListAfter(ctx, &store.NotificationListAfterParams{DoctorID: "d1", After: 0, UpTo: 2, Limit: 1}); err != nil || !slices.Equal(ids(page), []string{"n1"}) {
		t.Fatalf("after 0, up to 2, limit 1: %v %v", ids(page), err)
	}

	counts, err := q.NotificationCountForDashboard(ctx, &store.NotificationDashboardCountsParams{DoctorID: "d1",
		ResultTypes: []string{templates.TypeResultAvailable, templates.TypeCriticalResult}, ResultsSince: at.Add(30 * time.Minute)})
	if err != nil || counts.Unread != 3 || counts.Critical != 1 || counts.Results != 1 {
		t.Fatalf("dashboard: %+v %v", counts, err)
	}

	// Read one, then read all of a category, then all.
	readAt := at.Add(5 * time.Hour)
	if err := q.NotificationMarkRead(ctx, &store.NotificationMarkReadParams{ID: "n1", DoctorID: "d1", At: readAt}); err != nil {
		t.Fatal(err)
	}
	if err := q.NotificationMarkRead(ctx, &store.NotificationMarkReadParams{ID: "n1", DoctorID: "d1", At: readAt.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.NotificationGet(ctx, "n1"); n.ReadAt == nil || !n.ReadAt.Equal(readAt) {
		t.Fatalf("read at: %+v, want the first read time kept", n)
	}
	if seq, err := q.DoctorGetNotificationSeq(ctx, "d1"); err != nil || seq != 3 {
		t.Fatalf("seq: %d %v", seq, err)
	}
	all := &store.NotificationMarkAllReadParams{DoctorID: "d1", UpTo: 3, Category: "critical_results", At: readAt,
		DeliveryStatus: "read", DeliveryFrom: []string{domain.DeliveryQueued, domain.DeliverySent, domain.DeliveryDelivered}}
	if err := q.DeliveryMarkUnreadRead(ctx, all); err != nil {
		t.Fatal(err)
	}
	if marked, err := q.NotificationMarkAllRead(ctx, all); err != nil || marked != 1 {
		t.Fatalf("mark all critical read: %d %v", marked, err)
	}
	if dl, _ := q.DeliveryGet(ctx, "n2-app"); dl.Status != "read" {
		t.Fatalf("in-app delivery of n2: %+v", dl)
	}
	if dl, _ := q.DeliveryGet(ctx, "n2-sms"); dl.Status != domain.DeliverySent {
		t.Fatalf("the sms delivery moved: %+v", dl)
	}
	if dl, _ := q.DeliveryGet(ctx, "n1-app"); dl.Status != domain.DeliveryQueued {
		t.Fatalf("the in-app delivery of a notification read before moved: %+v", dl)
	}
	all.Category, all.UpTo = "", 2
	if marked, err := q.NotificationMarkAllRead(ctx, all); err != nil || marked != 0 {
		t.Fatalf("mark all up to 2 read: %d %v, want 0 (n3 is above)", marked, err)
	}

	// Acknowledge: the first wins.
	note := "called the patient"
	first, err := q.NotificationAcknowledge(ctx, &store.NotificationAcknowledgeParams{ID: "n2", DoctorID: "d1", Note: &note, At: readAt})
	if err != nil || !first {
		t.Fatalf("acknowledge: %v %v", first, err)
	}
	if again, err := q.NotificationAcknowledge(ctx, &store.NotificationAcknowledgeParams{ID: "n2", DoctorID: "d1", At: readAt.Add(time.Hour)}); err != nil || again {
		t.Fatalf("acknowledge again: %v %v", again, err)
	}
	if n, _ := q.NotificationGet(ctx, "n2"); n.AcknowledgedAt == nil || !n.AcknowledgedAt.Equal(readAt) || n.AckNote == nil || *n.AckNote != note ||
		n.AcknowledgedBy == nil || *n.AcknowledgedBy != "d1" || n.ReadAt == nil {
		t.Fatalf("acknowledged: %+v", n)
	}
	if other, err := q.NotificationAcknowledge(ctx, &store.NotificationAcknowledgeParams{ID: "m1", DoctorID: "d1", At: readAt}); err != nil || other {
		t.Fatalf("acknowledge another doctor's: %v %v", other, err)
	}
	if name, err := q.DoctorGetName(ctx, "d2"); err != nil || name != "Dr d2" {
		t.Fatalf("name: %q %v", name, err)
	}
	if _, err := q.DoctorGetName(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("name of unknown: %v", err)
	}

	// Checkups and orders as a doctor sees them: d2 was notified about c1;
	// d1 is a referring doctor of o1, notified about it too.
	exec(t, db, `INSERT INTO checkups (id, order_id, patient_ref, status, last_event_at, created_at, updated_at) VALUES
('c1', 'o1', 'p1', 'resulted', ?, ?, ?), ('c2', 'o1', 'p1', 'scheduled', ?, ?, ?)`, at, at, at, at, at, at)
	exec(t, db, `INSERT INTO checkup_doctors (checkup_id, doctor_external_id) VALUES ('c2', 'x1')`)
	exec(t, db, `INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at) VALUES
('c1', 2, 'corrected', TRUE, '{"summary":"s2"}', 'e2', ?, ?), ('c1', 1, 'final', FALSE, '{"summary":"s1"}', 'e1', ?, ?)`, at, at, at, at)
	exec(t, db, `INSERT INTO orders (id, patient_ref, status, last_seq, last_event_at, created_at, updated_at) VALUES
('o1', 'p1', 'completed', 2, ?, ?, ?), ('o2', 'p2', 'placed', 1, ?, ?, ?), ('o3', 'p1', 'placed', 1, ?, ?, ?)`,
		at, at, at, at, at.Add(time.Hour), at, at, at.Add(2*time.Hour), at)
	exec(t, db, `INSERT INTO order_doctors (order_id, doctor_external_id) VALUES ('o2', 'x1'), ('o3', 'x1'), ('o1', 'x2')`)
	exec(t, db, `INSERT INTO order_events (order_id, seq, status, applied, event_id, occurred_at, received_at) VALUES
('o1', 2, 'completed', TRUE, 'e2', ?, ?), ('o1', 1, 'placed', TRUE, 'e1', ?, ?)`, at, at, at, at)

	if c, err := q.CheckupGetVisible(ctx, &store.CheckupGetVisibleParams{ID: "c1", DoctorExternalID: "x2", DoctorID: "d2"}); err != nil ||
		c.OrderID != "o1" || c.Status != "resulted" || c.ScheduledAt != nil || !c.LastEventAt.Equal(at) {
		t.Fatalf("checkup c1 to d2: %+v %v", c, err)
	}
	if _, err := q.CheckupGetVisible(ctx, &store.CheckupGetVisibleParams{ID: "c1", DoctorExternalID: "x1", DoctorID: "d1"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("checkup c1 to d1: %v, want ErrNotFound", err)
	}
	rs, err := q.CheckupListResults(ctx, "c1")
	if err != nil || len(rs) != 2 || rs[0].Version != 1 || rs[0].Critical || rs[1].Status != "corrected" || !rs[1].Critical ||
		!slices.Contains([]string{`{"summary":"s2"}`, `{"summary": "s2"}`}, rs[1].Result) {
		t.Fatalf("results: %+v %v", rs, err)
	}

	d1 := store.OrderVisibleTo{DoctorExternalID: "x1", DoctorID: "d1"}
	orders := func(p store.OrderListVisibleParams) []string {
		t.Helper()
		p.OrderVisibleTo, p.Limit = d1, max(p.Limit, 10)
		rows, err := q.OrderListVisible(ctx, &p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range rows {
			out = append(out, o.ID)
		}
		return out
	}
	if got := orders(store.OrderListVisibleParams{}); !slices.Equal(got, []string{"o3", "o2", "o1"}) {
		t.Fatalf("orders: %v", got)
	}
	if got := orders(store.OrderListVisibleParams{After: &store.OrderCursor{CreatedAt: at.Add(time.Hour), ID: "o2"}}); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("orders after o2: %v", got)
	}
	if got := orders(store.OrderListVisibleParams{Status: "placed", PatientRef: "p1"}); !slices.Equal(got, []string{"o3"}) {
		t.Fatalf("placed orders of p1: %v", got)
	}
	if got := orders(store.OrderListVisibleParams{Since: at.Add(time.Hour)}); !slices.Equal(got, []string{"o3", "o2"}) {
		t.Fatalf("orders since: %v", got)
	}
	if rows, err := q.OrderListVisible(ctx, &store.OrderListVisibleParams{OrderVisibleTo: d1, Limit: 1}); err != nil || len(rows) != 1 || rows[0].LastSeq != 1 {
		t.Fatalf("orders, limit 1: %+v %v", rows, err)
	}
	o, err := q.OrderGetVisible(ctx, &store.OrderGetVisibleParams{OrderVisibleTo: d1, ID: "o1"})
	if err != nil || o.Status != "completed" || o.LastSeq != 2 || o.PatientRef != "p1" {
		t.Fatalf("order o1 to d1: %+v %v", o, err)
	}
	if _, err := q.OrderGetVisible(ctx, &store.OrderGetVisibleParams{OrderVisibleTo: store.OrderVisibleTo{DoctorExternalID: "x9", DoctorID: "d9"}, ID: "o1"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("order o1 to a stranger: %v", err)
	}
	if evs, err := q.OrderEventList(ctx, "o1"); err != nil || len(evs) != 2 || evs[0].Seq != 1 || evs[1].Status != "completed" || !evs[1].Applied {
		t.Fatalf("timeline: %+v %v", evs, err)
	}
	if cs, err := q.OrderListVisibleCheckupIDs(ctx, &store.OrderGetVisibleParams{OrderVisibleTo: d1, ID: "o1"}); err != nil || !slices.Equal(cs, []string{"c2"}) {
		t.Fatalf("checkups of o1 d1 sees: %v %v", cs, err)
	}
	byStatus, err := q.OrderCountByStatus(ctx, &d1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range byStatus {
		got[s.Status] = s.N
	}
	if len(got) != 2 || got["placed"] != 2 || got["completed"] != 1 {
		t.Fatalf("orders by status: %v", got)
	}
}
