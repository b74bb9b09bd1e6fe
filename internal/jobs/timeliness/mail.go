package timeliness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// ReportName is report_mails.report of this report.
const ReportName = "critical-timeliness"

// MailConsumer names the worker's consumer of report-mail commands (its
// consumer group and its poison rows).
const MailConsumer = "report-mail"

// WeeklyMail is the cron job that stores the past week's report for its
// recipient and publishes the command to e-mail it, in one transaction. The
// week is Monday to Sunday (UTC) before the week of now; a week already
// stored is left alone, so the job can run any number of times.
type WeeklyMail struct {
	db     *bun.DB
	outbox *outbox.Publisher
	topic  string
	to     string
	sla    time.Duration
	now    func() time.Time
	logger *slog.Logger
}

// NewWeeklyMail returns the job; to is the recipient, topic the report-mail
// topic, sla the acknowledgement SLA the report measures against.
func NewWeeklyMail(db *bun.DB, ob *outbox.Publisher, topic, to string, sla time.Duration, now func() time.Time, logger *slog.Logger) *WeeklyMail {
	if now == nil {
		now = time.Now
	}
	return &WeeklyMail{db: db, outbox: ob, topic: topic, to: to, sla: sla, now: now, logger: logger}
}

// Run is the cron entry point.
func (w *WeeklyMail) Run(ctx context.Context, _ time.Time) error {
	_, err := w.Once(ctx)
	return err
}

// LastWeek returns the Monday and Sunday (UTC dates) of the week before the
// week of now.
func LastWeek(now time.Time) (monday, sunday time.Time) {
	today := day(now)
	thisMonday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	return thisMonday.AddDate(0, 0, -7), thisMonday.AddDate(0, 0, -1)
}

// MailID is the report_mails id of a week's report for a recipient. It is
// also the e-mail's Message-ID (left part), so a resend after a crash
// carries the same one; hence hex, not the address itself.
func MailID(monday time.Time, to string) string {
	sum := sha256.Sum256([]byte(ReportName + "\x00" + monday.Format(time.DateOnly) + "\x00" + to))
	return "ctr-" + monday.Format("20060102") + "-" + hex.EncodeToString(sum[:8])
}

// Once stores last week's report unless it is stored already; stored tells
// whether this call did it.
func (w *WeeklyMail) Once(ctx context.Context) (stored bool, err error) {
	now := w.now().UTC()
	monday, sunday := LastWeek(now)
	id := MailID(monday, w.to)
	err = w.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := store.NewQueries(tx)
		exists, err := q.ReportMailExists(ctx, id)
		if err != nil {
			return fmt.Errorf("report mail: %w", err)
		}
		if exists {
			return nil
		}
		rep, err := Build(ctx, q, monday, sunday, w.sla, now)
		if err != nil {
			return err
		}
		body, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("report mail: encode: %w", err)
		}
		// Two replicas racing past the look-up: the loser's insert does
		// nothing and it publishes nothing.
		inserted, err := q.ReportMailInsert(ctx, &store.ReportMail{
			ID: id, Report: ReportName, PeriodStart: monday, PeriodEnd: sunday, Recipient: w.to, Body: string(body), CreatedAt: now,
		})
		if err != nil {
			return fmt.Errorf("report mail: store: %w", err)
		}
		if !inserted {
			return nil
		}
		payload, err := events.ReportMail{ReportMailID: id}.Encode()
		if err != nil {
			return fmt.Errorf("report mail: command: %w", err)
		}
		msg := message.NewMessage(id, payload)
		for k, v := range events.CloudEventMetadata(id, events.TypeReportMail, "rfd-notify", now) {
			msg.Metadata.Set(k, v)
		}
		if err := w.outbox.Publish(ctx, tx, w.topic, msg); err != nil {
			return fmt.Errorf("report mail: publish: %w", err)
		}
		stored = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if stored {
		w.logger.InfoContext(ctx, "timeliness report stored for e-mail", "report_mail_id", id, "week", monday.Format(time.DateOnly))
	}
	return stored, nil
}

// EmailSender sends one e-mail; *email.Client implements it.
type EmailSender interface {
	Send(ctx context.Context, msg email.Message) (channels.Outcome, error)
}

// Mailer is the worker's consumer of report-mail commands: it e-mails the
// stored report and marks it sent. The SMTP call is made outside any
// transaction; a crash between it and the update resends the e-mail with
// the same Message-ID, which is the best SMTP offers.
type Mailer struct {
	q      store.ReportExecutor
	sender EmailSender
	now    func() time.Time
	logger *slog.Logger
}

// NewMailer returns the consumer.
func NewMailer(db *bun.DB, sender EmailSender, now func() time.Time, logger *slog.Logger) *Mailer {
	if now == nil {
		now = time.Now
	}
	return &Mailer{q: store.NewQueries(db), sender: sender, now: now, logger: logger}
}

// Handle processes one report-mail command. A report already sent is
// acknowledged; an SMTP refusal (5xx) is permanent and poisons the command
// with the reason, so an operator can fix the address or the server and
// replay it; anything else is retried.
func (m *Mailer) Handle(msg *message.Message) error {
	ctx := msg.Context()
	cmd, err := events.DecodeReportMail(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	rm, err := m.q.ReportMailGet(ctx, cmd.ReportMailID)
	if errors.Is(err, store.ErrNotFound) {
		return msgerr.Permanentf("report-mail: /report_mail_id: no such report mail")
	}
	if err != nil {
		return fmt.Errorf("report mail: load: %w", err)
	}
	if rm.Status == "sent" {
		return nil
	}
	var rep Report
	if err := json.Unmarshal([]byte(rm.Body), &rep); err != nil {
		return msgerr.Permanent(fmt.Errorf("report mail: stored body: %w", err))
	}
	subject, text, html, err := RenderMail(rep)
	if err != nil {
		return msgerr.Permanent(err)
	}
	out, sendErr := m.sender.Send(ctx, email.Message{To: rm.Recipient, Subject: subject, Text: text, HTML: html, DeliveryID: rm.ID})
	now := m.now().UTC()
	if sendErr != nil {
		// The SMTP error names the server's reply, never the report.
		if err := m.q.ReportMailRecordFailure(ctx, &store.ReportMailRecordFailureParams{ID: rm.ID, Error: truncate(sendErr.Error(), 500)}); err != nil {
			m.logger.WarnContext(ctx, "report mail: record failure", "report_mail_id", rm.ID, "error", err)
		}
		if channels.IsPermanent(sendErr) {
			return msgerr.Permanent(fmt.Errorf("report mail: %w", sendErr))
		}
		return fmt.Errorf("report mail: %w", sendErr)
	}
	if err := m.q.ReportMailMarkSent(ctx, &store.ReportMailMarkSentParams{ID: rm.ID, MessageID: out.ProviderMessageID, At: now}); err != nil {
		return fmt.Errorf("report mail: mark sent: %w", err)
	}
	m.logger.InfoContext(ctx, "timeliness report e-mailed", "report_mail_id", rm.ID)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
