package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/sse"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/delivery/inapp"
	"github.com/rfd-notify/rfd/internal/store"
)

// StreamDeps are what the in-app stream needs.
type StreamDeps struct {
	DB  *bun.DB
	Hub *inapp.Hub
	// Doctor is the authenticated doctor of the request context.
	Doctor func(ctx context.Context) (domain.Doctor, bool)
	// Security is the operation's security requirement in the spec.
	Security []map[string][]string
	// Heartbeat is how often an idle stream sends a comment to keep
	// proxies from closing it.
	Heartbeat time.Duration
	// Expires is when the token that opened the stream stops being
	// accepted: the stream ends then, so a revoked or lapsed session stops
	// receiving patient data. nil (or no value) leaves the stream open.
	Expires func(ctx context.Context) (time.Time, bool)
	// Gate caps the open streams and ends them at shutdown; nil admits
	// every stream and never ends one.
	Gate *StreamGate
}

// Final comments of a stream the server ends. The portal reconnects after
// either; with the first it needs a fresh token, or it gets 401.
const (
	streamEndExpired  = "token expired: reconnect with a fresh token"
	streamEndShutdown = "server shutting down: reconnect"
)

// StreamNotification is the data of a "notification" event.
type StreamNotification struct {
	ID        string    `json:"id" doc:"Notification id; GET /v1/notifications/{id} has the detail." example:"7b0c1c8e-3f59-5d1b-9a43-2d0f0f4f9a11"`
	Seq       int64     `json:"seq" doc:"The doctor's notification sequence number, also the event id." example:"42"`
	Type      string    `json:"type" example:"result_available"`
	Category  string    `json:"category" enum:"results,critical_results,orders,security,announcements"`
	Priority  string    `json:"priority" enum:"normal,high,critical"`
	Title     string    `json:"title" example:"Result ready"`
	State     string    `json:"state" enum:"active,superseded,retracted"`
	CreatedAt time.Time `json:"created_at"`
}

type streamInput struct {
	LastEventID string `header:"Last-Event-ID" doc:"The id of the last event received; the stream first replays every notification after it, then goes live."`
}

// RegisterStream registers GET /v1/notifications/stream: Server-Sent Events
// of the doctor's in-app notifications. Event ids are the doctor's
// notification sequence numbers, so a client reconnecting with
// Last-Event-ID gets everything it missed and nothing twice.
func RegisterStream(api huma.API, d StreamDeps) {
	if d.Heartbeat == 0 {
		d.Heartbeat = 15 * time.Second
	}
	sse.Register(api, huma.Operation{
		OperationID: "streamNotifications",
		Method:      http.MethodGet,
		Path:        "/v1/notifications/stream",
		Summary:     "Stream in-app notifications (Server-Sent Events)",
		Description: "Replays the notifications after Last-Event-ID, then pushes new ones as they are delivered. Comments are sent as heartbeats. " +
			"The stream ends, after a final comment, when the token that opened it expires (reconnect with a fresh token) and when the server shuts down (reconnect). " +
			"A doctor may hold a limited number of open streams on one server (5 by default), and a server serves a limited number in all: one more is 429 with Retry-After.",
		Tags:     []string{"Notifications"},
		Security: d.Security,
		// 429 is documented with its Retry-After by documentRateLimit.
		Errors:      []int{http.StatusUnauthorized, http.StatusServiceUnavailable},
		Middlewares: huma.Middlewares{d.Gate.admit(api, d.Doctor)},
	}, map[string]any{"notification": StreamNotification{}}, func(ctx context.Context, in *streamInput, send sse.Sender) {
		doc, ok := d.Doctor(ctx)
		if !ok {
			return
		}
		var expires time.Time
		var expired <-chan time.Time
		if d.Expires != nil {
			if t, ok := d.Expires(ctx); ok {
				expires = t
				timer := time.NewTimer(time.Until(t))
				defer timer.Stop()
				expired = timer.C
			}
		}
		// valid says whether the token still allows sending; the timer
		// alone could fire a little after a page of the backlog went out.
		valid := func() bool { return expires.IsZero() || time.Now().Before(expires) }
		// Subscribe before reading the database, so nothing delivered in
		// between is lost; the sequence check drops what both carry.
		live, cancel := d.Hub.Subscribe(doc.ID)
		defer cancel()

		var last int64
		if v, err := strconv.ParseInt(in.LastEventID, 10, 64); err == nil && v > 0 {
			last = v
		}
		emit := func(ns []StreamNotification) bool {
			for _, n := range ns {
				if n.Seq <= last {
					continue
				}
				if !valid() {
					_ = send.Comment(streamEndExpired)
					return false
				}
				if err := send(sse.Message{ID: int(n.Seq), Data: n}); err != nil {
					return false
				}
				last = n.Seq
			}
			return true
		}
		for {
			backlog, err := notificationsAfter(ctx, d.DB, doc.ID, last, 0)
			if err != nil || !emit(backlog) {
				return
			}
			if len(backlog) < pageOfBacklog {
				break
			}
		}
		tick := time.NewTicker(d.Heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-expired:
				_ = send.Comment(streamEndExpired)
				return
			case <-d.Gate.closing():
				_ = send.Comment(streamEndShutdown)
				return
			case <-tick.C:
				if send.Comment("heartbeat") != nil {
					return
				}
			case ev := <-live:
				if ev.Seq <= last {
					continue
				}
				// Read from the database, not the event: the event is only
				// a nudge, the database says what this doctor may see.
				ns, err := notificationsAfter(ctx, d.DB, doc.ID, last, ev.Seq)
				if err != nil || !emit(ns) {
					return
				}
			}
		}
	})
}

const pageOfBacklog = 500

// notificationsAfter lists the doctor's notifications with a sequence
// number above after (and at most upTo, if upTo > 0), oldest first.
func notificationsAfter(ctx context.Context, db *bun.DB, doctorID string, after, upTo int64) ([]StreamNotification, error) {
	rows, err := store.NewQueries(db).NotificationListAfter(ctx, &store.NotificationListAfterParams{DoctorID: doctorID,
		After: after, UpTo: upTo, Limit: pageOfBacklog})
	if err != nil {
		return nil, err
	}
	out := make([]StreamNotification, 0, len(rows))
	for _, n := range rows {
		out = append(out, StreamNotification{ID: n.ID, Seq: n.Seq, Type: n.Type, Category: string(n.Category),
			Priority: string(n.Priority), Title: n.Title, State: n.State, CreatedAt: n.CreatedAt})
	}
	return out, nil
}
