package delivery

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// SMSCallbacks receives the SMS provider's status callbacks. Each is
// authenticated by X-Twilio-Signature over the public URL and the sorted
// form parameters; the URL carries only the opaque delivery id. Statuses
// only move forward, so callbacks replayed or arriving out of order leave
// the final status right.
type SMSCallbacks struct {
	db        *bun.DB
	outbox    *outbox.Publisher
	sendTopic string
	authToken string
	publicURL string
	now       func() time.Time
	logger    *slog.Logger
}

// NewSMSCallbacks returns the handler; publicURL is config's PublicBaseURL. A
// carrier's final failure of a critical notification's SMS queues the next
// channel of the doctor's fallback order on sendTopic.
func NewSMSCallbacks(db *bun.DB, ob *outbox.Publisher, sendTopic, authToken, publicURL string, now func() time.Time, logger *slog.Logger) *SMSCallbacks {
	if now == nil {
		now = time.Now
	}
	return &SMSCallbacks{db: db, outbox: ob, sendTopic: sendTopic, authToken: authToken,
		publicURL: strings.TrimRight(publicURL, "/"), now: now, logger: logger}
}

// ServeHTTP handles POST SMSCallbackPath?d=DELIVERY_ID.
func (h *SMSCallbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	fullURL := h.publicURL + r.URL.RequestURI()
	if h.authToken == "" || !sms.ValidateSignature(h.authToken, fullURL, r.PostForm, r.Header.Get(sms.SignatureHeader)) {
		http.Error(w, "invalid signature", http.StatusForbidden)
		return
	}
	deliveryID := r.URL.Query().Get("d")
	providerStatus := r.PostForm.Get("MessageStatus")
	if deliveryID == "" || providerStatus == "" {
		http.Error(w, "missing delivery or status", http.StatusBadRequest)
		return
	}
	status, _ := sms.MapStatus(providerStatus)
	ctx := r.Context()
	// A carrier's failure keeps its error code for operators; the API
	// shows only the reason code.
	reason, providerCode := "", ""
	if status == domain.DeliveryFailed || status == domain.DeliveryUndelivered {
		reason, providerCode = ReasonCarrierUndelivered, r.PostForm.Get("ErrorCode")
	}
	var moved bool
	var err error
	switch status {
	case domain.DeliveryQueued, domain.DeliverySending:
		// Earlier than what we recorded when the provider accepted it.
		moved = false
	default:
		err = h.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			now := h.now().UTC()
			q := store.NewQueries(tx)
			moved, err = advance(ctx, q, deliveryID, status, reason, providerCode, now)
			if err != nil || !moved || (status != domain.DeliveryFailed && status != domain.DeliveryUndelivered) {
				return err
			}
			notificationID, err := q.DeliveryGetNotificationID(ctx, deliveryID)
			if err != nil {
				return err
			}
			_, err = Fallback(ctx, tx, h.outbox, h.sendTopic, notificationID, string(domain.ChannelSMS), now)
			return err
		})
	}
	if err != nil {
		h.logger.ErrorContext(ctx, "sms status callback", "delivery_id", deliveryID, "error", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	h.logger.DebugContext(ctx, "sms status callback", "delivery_id", deliveryID, "status", status, "moved", moved)
	w.WriteHeader(http.StatusNoContent)
}
