package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/store"
)

// NotificationSummary is a notification as the list shows it.
type NotificationSummary struct {
	ID             string          `json:"id" doc:"The notification's id." example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
	Seq            int64           `json:"seq" doc:"The doctor's own sequence number: a newer notification has a higher one." example:"42"`
	Type           string          `json:"type" enum:"checkup_scheduled,checkup_completed,result_available,result_corrected,result_retracted,critical_result,order_status,welcome,new_device_login,failed_login_alert,announcement,digest" example:"critical_result"`
	Category       domain.Category `json:"category" enum:"results,critical_results,orders,security,announcements" example:"critical_results"`
	Priority       domain.Priority `json:"priority" enum:"normal,high,critical" example:"critical"`
	Title          string          `json:"title" doc:"Plain text (the portal escapes it); may name the patient." example:"URGENT: critical result for Somchai Jaidee (PT-1001)"`
	State          string          `json:"state" enum:"active,superseded,retracted" doc:"superseded: a corrected result replaced it; retracted: the result or checkup was withdrawn. Neither is deleted." example:"active"`
	StateReason    string          `json:"state_reason,omitempty" example:"superseded by result version 2"`
	CheckupID      *string         `json:"checkup_id,omitempty" example:"CHK-2026-0001"`
	OrderID        *string         `json:"order_id,omitempty" example:"ORD-2026-0001"`
	OnBehalfOf     *string         `json:"on_behalf_of,omitempty" doc:"The doctor (id) this copy was sent for while the recipient covers for them." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	CreatedAt      time.Time       `json:"created_at" example:"2026-11-25T03:00:00Z"`
	ReadAt         *time.Time      `json:"read_at,omitempty" example:"2026-11-25T03:05:00Z"`
	AcknowledgedAt *time.Time      `json:"acknowledged_at,omitempty" example:"2026-11-25T03:06:00Z"`
}

// NotificationDetail is a notification in full.
type NotificationDetail struct {
	NotificationSummary
	Body            string              `json:"body" doc:"Plain text (the portal escapes it); may carry patient detail." example:"Potassium for Somchai Jaidee (PT-1001): 6.9 mmol/L. This is a critical value: please review and act now."`
	ResultVersion   *int                `json:"result_version,omitempty" example:"1"`
	SupersededBy    *string             `json:"superseded_by,omitempty" example:"7a2d9b0f-3c4e-5d6f-8a9b-0c1d2e3f4a5b"`
	SendAt          time.Time           `json:"send_at" doc:"When it went (or goes) out; later than created_at when quiet hours deferred it." example:"2026-11-25T03:00:00Z"`
	ExpiresAt       *time.Time          `json:"expires_at,omitempty" example:"2026-12-25T03:00:00Z"`
	Context         NotificationContext `json:"context"`
	Acknowledgement *Acknowledgement    `json:"acknowledgement,omitempty"`
	Deliveries      []ChannelDelivery   `json:"deliveries" doc:"The notification on each channel."`
}

// NotificationContext is what the notification is about.
type NotificationContext struct {
	PatientName      string `json:"patient_name,omitempty" example:"Somchai Jaidee"`
	PatientRef       string `json:"patient_ref,omitempty" example:"PT-1001"`
	TestName         string `json:"test_name,omitempty" example:"Potassium"`
	ResultValue      string `json:"result_value,omitempty" example:"6.9 mmol/L"`
	OrderStatus      string `json:"order_status,omitempty" example:"completed"`
	OrderDescription string `json:"order_description,omitempty" example:"Lipid panel"`
	DeviceHint       string `json:"device_hint,omitempty" example:"Chrome on macOS"`
	PortalURL        string `json:"portal_url,omitempty" example:"https://portal.example/notifications/6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
}

// ChannelDelivery is the notification on one channel (named apart from
// Delivery.status: generators name that inline enum DeliveryStatus).
type ChannelDelivery struct {
	Channel      domain.Channel `json:"channel" enum:"in_app,email,sms,push,webhook" example:"sms"`
	Status       string         `json:"status" enum:"queued,sending,sent,delivered,read,acknowledged,failed,undelivered,suppressed" example:"delivered"`
	ReasonCode   string         `json:"reason_code,omitempty" doc:"Why it failed, was suppressed or waits: a stable code (see getDelivery's reason_code)." example:"opted_out"`
	StatusReason string         `json:"status_reason,omitempty" doc:"reason_code's message; never the provider's own error text." example:"The doctor opted out of this channel for this category."`
	UpdatedAt    time.Time      `json:"updated_at" example:"2026-11-25T03:00:02Z"`
}

// Acknowledgement closes the loop on a critical result: who acknowledged
// it, when, and their note.
type Acknowledgement struct {
	NotificationID string    `json:"notification_id" example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
	AcknowledgedBy DoctorRef `json:"acknowledged_by"`
	AcknowledgedAt time.Time `json:"acknowledged_at" example:"2026-11-25T03:06:00Z"`
	Note           string    `json:"note,omitempty" example:"Patient called in; repeat test ordered."`
}

// DoctorRef names a doctor.
type DoctorRef struct {
	ID   string `json:"id" example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	Name string `json:"name" example:"Dr. Anan Srisuk"`
}

// NotificationPage is a page of notifications, newest first.
type NotificationPage struct {
	Items      []NotificationSummary `json:"items"`
	NextCursor string                `json:"next_cursor,omitempty" doc:"Pass as cursor for the next (older) page; absent on the last page." example:"bjEfNDE"`
}

type listNotificationsInput struct {
	Limit    int       `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size, at most 100."`
	Cursor   string    `query:"cursor" maxLength:"200" doc:"The next_cursor of the previous page."`
	Unread   bool      `query:"unread" doc:"Only unread notifications."`
	Category string    `query:"category" enum:"results,critical_results,orders,security,announcements" doc:"Only this category."`
	Priority string    `query:"priority" enum:"normal,high,critical" doc:"Only this priority."`
	Since    time.Time `query:"since" doc:"Only notifications created at or after this time (RFC 3339)."`
}

type notificationPageOutput struct {
	Body NotificationPage
}

type getNotificationInput struct {
	ID string `path:"id" maxLength:"100" doc:"The notification's id." example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
}

type notificationDetailOutput struct {
	Body NotificationDetail
}

type readNotificationInput struct {
	ID string `path:"id" maxLength:"100" doc:"The notification's id." example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
}

type notificationSummaryOutput struct {
	Body NotificationSummary
}

type readAllInput struct {
	Category string `query:"category" enum:"results,critical_results,orders,security,announcements" doc:"Only this category."`
}

// ReadAllResult says how many notifications were marked read.
type ReadAllResult struct {
	Marked int64 `json:"marked" doc:"Notifications marked read by this call." example:"12"`
}

type readAllOutput struct {
	Body ReadAllResult
}

// AcknowledgeRequest is the optional note of an acknowledgement.
type AcknowledgeRequest struct {
	Note string `json:"note,omitempty" maxLength:"1000" doc:"What the doctor did about the result." example:"Patient called in; repeat test ordered."`
}

type acknowledgeInput struct {
	ID   string `path:"id" maxLength:"100" doc:"The notification's id." example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
	Body *AcknowledgeRequest
}

type acknowledgeOutput struct {
	Body Acknowledgement
}

func registerNotifications(doctor *huma.Group, h *service) {
	huma.Register(doctor, huma.Operation{
		OperationID: "listNotifications",
		Method:      http.MethodGet,
		Path:        "/v1/notifications",
		Summary:     "List the doctor's notifications",
		Description: "Newest first, paged by an opaque cursor over the doctor's sequence numbers: the next page continues exactly where the previous ended, " +
			"whatever arrives meanwhile. Filters: unread, category, priority, since. Reading the list is audited.",
		Tags: []string{"Notifications"},
	}, h.listNotifications)
	huma.Register(doctor, huma.Operation{
		OperationID: "getNotification",
		Method:      http.MethodGet,
		Path:        "/v1/notifications/{id}",
		Summary:     "Get a notification",
		Description: "The notification in full, with what it is about, its acknowledgement and its deliveries. Superseded and retracted notifications " +
			"stay readable, marked. Another doctor's notification is 404. Every read is audited.",
		Tags:   []string{"Notifications"},
		Errors: []int{http.StatusNotFound},
	}, h.getNotification)
	huma.Register(doctor, huma.Operation{
		OperationID: "readNotification",
		Method:      http.MethodPost,
		Path:        "/v1/notifications/{id}/read",
		Summary:     "Mark a notification read",
		Description: "Idempotent: the first read time is kept. The in-app delivery moves to read.",
		Tags:        []string{"Notifications"},
		Errors:      []int{http.StatusNotFound},
	}, h.readNotification)
	huma.Register(doctor, huma.Operation{
		OperationID: "readAllNotifications",
		Method:      http.MethodPost,
		Path:        "/v1/notifications/read-all",
		Summary:     "Mark every notification read",
		Description: "Marks every unread notification that exists when the call starts (optionally of one category) read.",
		Tags:        []string{"Notifications"},
	}, h.readAll)
	huma.Register(doctor, huma.Operation{
		OperationID: "acknowledgeNotification",
		Method:      http.MethodPost,
		Path:        "/v1/notifications/{id}/acknowledge",
		Summary:     "Acknowledge a critical result",
		Description: "Closes the loop on a critical result: records who acknowledged it, when, and an optional note, and marks it read. Idempotent: " +
			"acknowledging again answers the first acknowledgement unchanged. Only critical results are acknowledged (409 otherwise).",
		Tags:   []string{"Notifications"},
		Errors: []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge},
	}, h.acknowledge)
}

func summaryOf(n store.Notification) NotificationSummary {
	return NotificationSummary{
		ID: n.ID, Seq: n.Seq, Type: n.Type, Category: n.Category, Priority: n.Priority, Title: n.Title, State: n.State,
		StateReason: n.StateReason, CheckupID: n.CheckupID, OrderID: n.OrderID, OnBehalfOf: n.OnBehalfOf,
		CreatedAt: n.CreatedAt.UTC(), ReadAt: utcPtr(n.ReadAt), AcknowledgedAt: utcPtr(n.AcknowledgedAt),
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (h *service) listNotifications(ctx context.Context, in *listNotificationsInput) (*notificationPageOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	params := &store.NotificationListForDoctorParams{DoctorID: doc.ID, Unread: in.Unread, Category: in.Category,
		Priority: in.Priority, Limit: in.Limit + 1}
	if in.Cursor != "" {
		seq, err := parseSeqCursor(in.Cursor)
		if err != nil {
			return nil, err
		}
		params.Before = &seq
	}
	if !in.Since.IsZero() {
		params.Since = in.Since.UTC()
	}
	rows, err := store.NewQueries(h.db).NotificationListForDoctor(ctx, params)
	if err != nil {
		return nil, h.fail(ctx, "listNotifications", err)
	}
	page := NotificationPage{Items: make([]NotificationSummary, 0, min(len(rows), in.Limit))}
	for i, n := range rows {
		if i == in.Limit {
			page.NextCursor = seqCursor(rows[i-1].Seq)
			break
		}
		page.Items = append(page.Items, summaryOf(n))
	}
	if len(page.Items) > 0 {
		ids := make([]string, len(page.Items))
		for i, it := range page.Items {
			ids[i] = it.ID
		}
		if err := h.audit(ctx, h.db, "notification.list", "notification", "", outcomeSuccess, map[string]any{"ids": ids}); err != nil {
			return nil, h.fail(ctx, "listNotifications", err)
		}
	}
	return &notificationPageOutput{Body: page}, nil
}

// ownNotification loads the doctor's notification id; found=false when it
// does not exist or is another doctor's (the caller answers 404 either way).
func ownNotification(ctx context.Context, db bun.IDB, doctorID, id string) (store.Notification, bool, error) {
	n, err := store.NewQueries(db).NotificationGetForDoctor(ctx, &store.NotificationGetForDoctorParams{ID: id, DoctorID: doctorID})
	if errors.Is(err, store.ErrNotFound) {
		return store.Notification{}, false, nil
	}
	if err != nil {
		return store.Notification{}, false, err
	}
	return *n, true, nil
}

func errNotificationNotFound() error { return huma.Error404NotFound("no such notification") }

func (h *service) getNotification(ctx context.Context, in *getNotificationInput) (*notificationDetailOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	n, found, err := ownNotification(ctx, h.db, doc.ID, in.ID)
	if err != nil {
		return nil, h.fail(ctx, "getNotification", err)
	}
	if !found {
		if err := h.audit(ctx, h.db, "notification.view", "notification", in.ID, outcomeNotFound, nil); err != nil {
			return nil, h.fail(ctx, "getNotification", err)
		}
		return nil, errNotificationNotFound()
	}
	detail, err := h.detailOf(ctx, n)
	if err != nil {
		return nil, h.fail(ctx, "getNotification", err)
	}
	if err := h.audit(ctx, h.db, "notification.view", "notification", n.ID, outcomeSuccess, nil); err != nil {
		return nil, h.fail(ctx, "getNotification", err)
	}
	return &notificationDetailOutput{Body: detail}, nil
}

func (h *service) detailOf(ctx context.Context, n store.Notification) (NotificationDetail, error) {
	d := NotificationDetail{
		NotificationSummary: summaryOf(n),
		Body:                n.Body,
		ResultVersion:       n.ResultVersion,
		SupersededBy:        n.SupersededBy,
		SendAt:              n.SendAt.UTC(),
		ExpiresAt:           utcPtr(n.ExpiresAt),
		Context:             contextOf(n.Data),
		Deliveries:          []ChannelDelivery{},
	}
	deliveries, err := store.NewQueries(h.db).DeliveryListStatuses(ctx, n.ID)
	if err != nil {
		return d, err
	}
	for _, dl := range deliveries {
		d.Deliveries = append(d.Deliveries, ChannelDelivery{Channel: dl.Channel, Status: dl.Status, ReasonCode: dl.ReasonCode,
			StatusReason: delivery.ReasonMessage(dl.ReasonCode), UpdatedAt: dl.UpdatedAt.UTC()})
	}
	ack, err := h.acknowledgementOf(ctx, h.db, n)
	if err != nil {
		return d, err
	}
	d.Acknowledgement = ack
	return d, nil
}

func (h *service) acknowledgementOf(ctx context.Context, db bun.IDB, n store.Notification) (*Acknowledgement, error) {
	if n.AcknowledgedAt == nil {
		return nil, nil
	}
	ack := &Acknowledgement{NotificationID: n.ID, AcknowledgedAt: n.AcknowledgedAt.UTC()}
	if n.AckNote != nil {
		ack.Note = *n.AckNote
	}
	if n.AcknowledgedBy != nil {
		ack.AcknowledgedBy.ID = *n.AcknowledgedBy
		name, err := store.NewQueries(db).DoctorGetName(ctx, *n.AcknowledgedBy)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("load acknowledging doctor: %w", err)
		}
		ack.AcknowledgedBy.Name = name
	}
	return ack, nil
}

// contextOf picks what a notification is about from its stored template
// data (templates.Data, stored with its Go field names).
func contextOf(data map[string]any) NotificationContext {
	s := func(k string) string {
		v, _ := data[k].(string)
		return v
	}
	return NotificationContext{
		PatientName: s("PatientName"), PatientRef: s("PatientRef"), TestName: s("TestName"), ResultValue: s("ResultValue"),
		OrderStatus: s("OrderStatus"), OrderDescription: s("OrderDescription"), DeviceHint: s("DeviceHint"), PortalURL: s("PortalURL"),
	}
}

// movableTo lists the delivery statuses from which a delivery may move to
// status (delivery.CanMove), for bulk updates that keep statuses monotonic.
func movableTo(status string) []string {
	all := []string{domain.DeliveryQueued, domain.DeliverySending, domain.DeliverySent, domain.DeliveryDelivered,
		delivery.StatusRead, delivery.StatusAcknowledged, domain.DeliveryFailed, domain.DeliveryUndelivered, domain.DeliverySuppressed}
	var out []string
	for _, from := range all {
		if delivery.CanMove(from, status) {
			out = append(out, from)
		}
	}
	return out
}

func (h *service) readNotification(ctx context.Context, in *readNotificationInput) (*notificationSummaryOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	var out store.Notification
	err = h.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := h.now().UTC()
		q := store.NewQueries(tx)
		if err := q.NotificationMarkRead(ctx, &store.NotificationMarkReadParams{ID: in.ID, DoctorID: doc.ID, At: now}); err != nil {
			return err
		}
		n, found, err := ownNotification(ctx, tx, doc.ID, in.ID)
		if err != nil {
			return err
		}
		if !found {
			return errNotificationNotFound()
		}
		if _, err := delivery.Advance(ctx, q, notify.DeliveryID(n.ID, domain.ChannelInApp), delivery.StatusRead, "", now); err != nil {
			return err
		}
		out = n
		return h.audit(ctx, tx, "notification.mark_read", "notification", n.ID, outcomeSuccess, nil)
	})
	if err != nil {
		return nil, h.fail(ctx, "readNotification", err)
	}
	return &notificationSummaryOutput{Body: summaryOf(out)}, nil
}

func (h *service) readAll(ctx context.Context, in *readAllInput) (*readAllOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	var marked int64
	err = h.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := h.now().UTC()
		// Everything up to the doctor's sequence number now: a notification
		// arriving during the call is not marked unseen.
		q := store.NewQueries(tx)
		upTo, err := q.DoctorGetNotificationSeq(ctx, doc.ID)
		if err != nil {
			return err
		}
		// The unread notifications marked by this call, and their in-app
		// deliveries.
		params := &store.NotificationMarkAllReadParams{DoctorID: doc.ID, UpTo: upTo, Category: in.Category, At: now,
			DeliveryStatus: delivery.StatusRead, DeliveryFrom: movableTo(delivery.StatusRead)}
		if err := q.DeliveryMarkUnreadRead(ctx, params); err != nil {
			return err
		}
		marked, err = q.NotificationMarkAllRead(ctx, params)
		return err
	})
	if err != nil {
		return nil, h.fail(ctx, "readAllNotifications", err)
	}
	return &readAllOutput{Body: ReadAllResult{Marked: marked}}, nil
}

func (h *service) acknowledge(ctx context.Context, in *acknowledgeInput) (*acknowledgeOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	var note *string
	if in.Body != nil && in.Body.Note != "" {
		note = &in.Body.Note
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	var ack *Acknowledgement
	err = h.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		n, found, err := ownNotification(ctx, tx, doc.ID, in.ID)
		if err != nil {
			return err
		}
		if !found {
			return errNotificationNotFound()
		}
		if n.Category != domain.CategoryCriticalResults {
			return huma.Error409Conflict("only critical results are acknowledged; mark other notifications read")
		}
		now := h.now().UTC()
		// The first acknowledgement wins; a repeat changes nothing.
		q := store.NewQueries(tx)
		first, err := q.NotificationAcknowledge(ctx, &store.NotificationAcknowledgeParams{ID: n.ID, DoctorID: doc.ID, Note: note, At: now})
		if err != nil {
			return err
		}
		if first {
			if _, err := delivery.Advance(ctx, q, notify.DeliveryID(n.ID, domain.ChannelInApp), delivery.StatusAcknowledged, "", now); err != nil {
				return err
			}
			if err := h.audit(ctx, tx, "notification.acknowledge", "notification", n.ID, outcomeSuccess, nil); err != nil {
				return err
			}
		}
		if n, _, err = ownNotification(ctx, tx, doc.ID, in.ID); err != nil {
			return err
		}
		ack, err = h.acknowledgementOf(ctx, tx, n)
		return err
	})
	if err != nil {
		return nil, h.fail(ctx, "acknowledgeNotification", err)
	}
	return &acknowledgeOutput{Body: *ack}, nil
}
