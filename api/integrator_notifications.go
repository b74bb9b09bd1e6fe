package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
)

// SendNotificationRequest is a notification an integrator sends to one
// doctor.
type SendNotificationRequest struct {
	DoctorID         string          `json:"doctor_id,omitempty" maxLength:"100" doc:"The doctor's id in this service. Give this or doctor_external_id." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	DoctorExternalID string          `json:"doctor_external_id,omitempty" maxLength:"200" doc:"The doctor's user-management id. Give this or doctor_id." example:"usr-10042"`
	Category         domain.Category `json:"category" enum:"results,critical_results,orders,security,announcements" doc:"Chooses the channels, through the doctor's preferences; critical_results and security ignore quiet hours." example:"announcements"`
	Priority         domain.Priority `json:"priority,omitempty" enum:"normal,high,critical" default:"normal" example:"normal"`
	Type             string          `json:"type" enum:"checkup_scheduled,checkup_completed,result_available,result_corrected,result_retracted,critical_result,order_status,welcome,new_device_login,failed_login_alert,announcement,digest" doc:"The template the texts are rendered from." example:"announcement"`
	Data             *TemplateData   `json:"data,omitempty" doc:"What the template shows."`
	ExpiresAt        *time.Time      `json:"expires_at,omitempty" doc:"After this time the notification is no longer delivered." example:"2026-12-25T03:00:00Z"`
}

// TemplateData is what a notification's template may show. Patient fields
// reach only the authenticated in-app view, never SMS, push or email.
type TemplateData struct {
	AnnouncementTitle string `json:"announcement_title,omitempty" maxLength:"200" doc:"announcement: the title (operator-written, no patient data)." example:"Clinic closed on 5 December"`
	AnnouncementBody  string `json:"announcement_body,omitempty" maxLength:"2000" doc:"announcement: the text (operator-written, no patient data)." example:"The laboratory is closed for the holiday; results resume on 6 December."`
	OrderStatus       string `json:"order_status,omitempty" enum:"placed,scheduled,sample_collected,in_progress,completed,cancelled" doc:"order_status: the order's status." example:"completed"`
	DeviceHint        string `json:"device_hint,omitempty" maxLength:"200" doc:"Security alerts: a coarse device description, never an IP address." example:"Chrome on macOS"`
	Count             int    `json:"count,omitempty" minimum:"0" maximum:"100000" doc:"digest: the number of notifications." example:"3"`
	PatientName       string `json:"patient_name,omitempty" maxLength:"200" doc:"In-app only." example:"Somchai Jaidee"`
	PatientRef        string `json:"patient_ref,omitempty" maxLength:"128" doc:"In-app only." example:"PT-1001"`
	TestName          string `json:"test_name,omitempty" maxLength:"200" doc:"In-app only." example:"Potassium"`
	ResultValue       string `json:"result_value,omitempty" maxLength:"200" doc:"In-app only." example:"6.9 mmol/L"`
	OrderDescription  string `json:"order_description,omitempty" maxLength:"500" doc:"In-app only." example:"Lipid panel"`
	CheckupID         string `json:"checkup_id,omitempty" maxLength:"128" example:"CHK-2026-0001"`
	OrderID           string `json:"order_id,omitempty" maxLength:"128" example:"ORD-2026-0001"`
}

func (d *TemplateData) templates() templates.Data {
	if d == nil {
		return templates.Data{}
	}
	return templates.Data{
		AnnouncementTitle: d.AnnouncementTitle, AnnouncementBody: d.AnnouncementBody, OrderStatus: d.OrderStatus, DeviceHint: d.DeviceHint,
		Count: d.Count, PatientName: d.PatientName, PatientRef: d.PatientRef, TestName: d.TestName, ResultValue: d.ResultValue,
		OrderDescription: d.OrderDescription, CheckupID: d.CheckupID, OrderID: d.OrderID,
	}
}

// SentNotification is what sending made: the doctor's notification and the
// copies for the doctors covering for them, each with its deliveries.
type SentNotification struct {
	ID            string                 `json:"id" doc:"The doctor's notification." example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
	DoctorID      string                 `json:"doctor_id" example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	Created       bool                   `json:"created" doc:"false when this very notification existed already (nothing new was sent)." example:"true"`
	Notifications []SentNotificationItem `json:"notifications" doc:"The doctor's notification first, then the covering doctors' copies."`
}

// SentNotificationItem is one notification made by a send.
type SentNotificationItem struct {
	ID         string           `json:"id" example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
	DoctorID   string           `json:"doctor_id" example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	OnBehalfOf *string          `json:"on_behalf_of,omitempty" doc:"The doctor this copy was sent for, while its recipient covers for them." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	SendAt     time.Time        `json:"send_at" doc:"When it goes out; later than now when the doctor's quiet hours defer it." example:"2026-11-25T03:00:00Z"`
	Deliveries []QueuedDelivery `json:"deliveries" doc:"One per channel; follow each with getDelivery."`
}

// QueuedDelivery is a notification's delivery on one channel.
type QueuedDelivery struct {
	ID      string         `json:"id" example:"3c9f2e1a-7b6d-5e4f-9a8b-1c2d3e4f5a6b"`
	Channel domain.Channel `json:"channel" enum:"in_app,email,sms,push,webhook" example:"email"`
	Status  string         `json:"status" enum:"queued,sending,sent,delivered,read,acknowledged,failed,undelivered,suppressed" example:"queued"`
}

type sendNotificationInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Names the request instead of its body: for 24 hours, the same key with the same body answers the first response again (with Idempotent-Replayed: true); the same key with a different body is 409; the same body under a new key is a new notification. Keys are per API key; only their hash is stored." example:"4f0c2b7e-announcement-2026-12-05"`
	Body           SendNotificationRequest
}

type sendNotificationOutput struct {
	Status   int
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the remembered response of an earlier request with the same Idempotency-Key."`
	Body     SentNotification
}

func registerSendNotification(integrator *huma.Group, in *integrations) {
	huma.Register(integrator, huma.Operation{
		OperationID: "sendNotification",
		Method:      http.MethodPost,
		Path:        "/v1/notifications",
		Summary:     "Send a notification to a doctor",
		Description: "Makes a notification for one doctor (by id or external user id) from a template type and its data, in one transaction with its " +
			"send commands: the doctor's channel preferences, quiet hours and covering doctors apply exactly as for events. Answers 201 " +
			"with the notification and its deliveries. The same request never notifies twice: without an Idempotency-Key, the same body " +
			"(however spelled) from the same API key within 24 hours answers 200 with created=false and the notification the first one " +
			"made, as it is now; with an Idempotency-Key, the key names the request for 24 hours (see the header). Needs scope " +
			"notifications:write.",
		Tags:          []string{tagSend},
		Metadata:      scopes(auth.ScopeNotificationsWrite),
		Errors:        []int{http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
		DefaultStatus: http.StatusCreated,
	}, in.sendNotification)
}

func (in *integrations) sendNotification(ctx context.Context, req *sendNotificationInput) (*sendNotificationOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := in.ready(); err != nil {
		return nil, err
	}
	body := req.Body
	if (body.DoctorID == "") == (body.DoctorExternalID == "") {
		return nil, huma.Error422UnprocessableEntity("give exactly one of doctor_id and doctor_external_id",
			&huma.ErrorDetail{Location: "body.doctor_id", Message: "exactly one of doctor_id and doctor_external_id is required"})
	}
	if body.Priority == "" {
		body.Priority = domain.PriorityNormal
	}
	canon, err := json.Marshal(body)
	if err != nil {
		return nil, in.fail(ctx, "sendNotification", err)
	}
	idem := newIdempotency(key.ID, req.IdempotencyKey, "sendNotification", string(canon))
	byBody := req.IdempotencyKey == ""
	if byBody {
		idem = bodyIdempotency(key.ID, "sendNotification", string(canon))
	}

	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	in.sweepIdempotency(ctx)
	var out sendNotificationOutput
	err = in.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		prev, err := in.claim(ctx, tx, idem)
		if err != nil {
			return err
		}
		if prev != nil && byBody {
			return existingNotification(ctx, tx, prev, &out)
		}
		if prev != nil {
			out.Status, out.Replayed = prev.status, "true"
			return json.Unmarshal(prev.body, &out.Body)
		}
		doc, found, err := doctorByIDOrExternal(ctx, tx, body.DoctorID, body.DoctorExternalID)
		if err != nil {
			return err
		}
		if !found {
			return huma.Error404NotFound("no such doctor")
		}
		// A request identified by its body makes a new notification once
		// its 24 hours are over.
		intentKey := "api/" + key.ID + "/" + uuid.NewString()
		if !byBody {
			// The same key with the same request names the same
			// notification even after the key has expired.
			intentKey = "api/" + key.ID + "/" + idem.keyHash[:32] + "/" + idem.requestHash[:32]
		}
		intent := notify.Intent{
			Key:           intentKey,
			SourceEventID: sendSource(key.ID),
			Type:          body.Type,
			Category:      body.Category,
			Priority:      body.Priority,
			Detail:        body.Data.templates(),
			ExpiresAt:     body.ExpiresAt,
		}
		outcome, err := in.notifier.Notify(ctx, tx, intent, []string{doc.ExternalUserID})
		if err != nil {
			return err
		}
		primary := notify.NotificationID(notify.DedupKey(intent, doc.ID, ""))
		ids := []string{primary}
		covering, err := notify.CoveringDoctors(ctx, tx, doc.ID, in.now())
		if err != nil {
			return err
		}
		for _, c := range covering {
			ids = append(ids, notify.NotificationID(notify.DedupKey(intent, c.ID, doc.ID)))
		}
		sent, err := sentNotifications(ctx, tx, ids)
		if err != nil {
			return err
		}
		out.Body = SentNotification{ID: primary, DoctorID: doc.ID, Created: len(outcome.Created) > 0, Notifications: sent}
		out.Status = http.StatusCreated
		if !out.Body.Created {
			out.Status = http.StatusOK
		}
		return in.remember(ctx, tx, idem, out.Status, out.Body)
	})
	if err != nil {
		return nil, in.fail(ctx, "sendNotification", err)
	}
	return &out, nil
}

// sendSource is the source_event_id of the notifications API key keyID
// sends: getDelivery shows a key the deliveries of those only.
func sendSource(keyID string) string { return "api:" + keyID }

// bodyIdempotency identifies a request sent without an Idempotency-Key by
// its body: the same body from the same API key is the same request for
// IdempotencyTTL, so a client retrying after a timeout does not notify the
// doctor twice. Its key hash cannot be that of a header key (those hash the
// header value alone).
func bodyIdempotency(apiKeyID, operation string, request ...string) idempotency {
	id := newIdempotency(apiKeyID, "-", operation, request...)
	id.keyHash = sha256Hex("request body", id.requestHash)
	return id
}

// existingNotification answers a repeated body: 200, created=false, and the
// notifications the first request made, with their deliveries as they are
// now. It is not a replay: the caller chose no key.
func existingNotification(ctx context.Context, tx bun.Tx, prev *replay, out *sendNotificationOutput) error {
	var first SentNotification
	if err := json.Unmarshal(prev.body, &first); err != nil {
		return fmt.Errorf("decode the first response: %w", err)
	}
	ids := make([]string, 0, len(first.Notifications))
	for _, n := range first.Notifications {
		ids = append(ids, n.ID)
	}
	sent, err := sentNotifications(ctx, tx, ids)
	if err != nil {
		return err
	}
	out.Status = http.StatusOK
	out.Body = SentNotification{ID: first.ID, DoctorID: first.DoctorID, Created: false, Notifications: sent}
	return nil
}

// doctorByIDOrExternal loads a doctor by this service's id or by external id.
func doctorByIDOrExternal(ctx context.Context, db bun.IDB, id, externalID string) (domain.Doctor, bool, error) {
	if externalID != "" {
		return notify.DoctorByExternalID(ctx, db, externalID)
	}
	d, err := store.NewQueries(db).DoctorGetByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return domain.Doctor{}, false, nil
	}
	if err != nil {
		return domain.Doctor{}, false, err
	}
	return d, true, nil
}

// sentNotifications lists the notifications ids (in that order, those
// that exist) with their deliveries.
func sentNotifications(ctx context.Context, db bun.IDB, ids []string) ([]SentNotificationItem, error) {
	q := store.NewQueries(db)
	rows, err := q.NotificationListSent(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := map[string]store.Notification{}
	for _, n := range rows {
		byID[n.ID] = n
	}
	out := make([]SentNotificationItem, 0, len(rows))
	for _, id := range ids {
		n, ok := byID[id]
		if !ok {
			continue
		}
		s := SentNotificationItem{ID: n.ID, DoctorID: n.DoctorID, OnBehalfOf: n.OnBehalfOf, SendAt: n.SendAt.UTC(), Deliveries: []QueuedDelivery{}}
		deliveries, err := q.DeliveryListQueuedRefs(ctx, n.ID)
		if err != nil {
			return nil, err
		}
		for _, d := range deliveries {
			s.Deliveries = append(s.Deliveries, QueuedDelivery{ID: d.ID, Channel: d.Channel, Status: d.Status})
		}
		out = append(out, s)
	}
	return out, nil
}
